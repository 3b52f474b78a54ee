import Testing
@testable import SessionState
import SessionCore

/// The owner's timer heap: pops in (deadline, session id) order, whether built at once or pushed.
@Suite("Deadline heap")
struct DeadlineHeapTests {
    private func drain(_ heap: inout DeadlineHeap) -> [(Int64, String)] {
        var out: [(Int64, String)] = []
        while let top = heap.peek {
            out.append((top.deadline.millisecondsSinceEpoch, top.sessionId))
            heap.pop()
        }
        return out
    }

    @Test("pushes and a heap built at once both pop earliest first, ties by id, every entry once")
    func order() {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 2, 3, 17, 1000] {
            // Few distinct deadlines, so that ties (ordered by id) are common.
            let entries = (0..<size).map { i in
                (deadline: Timestamp(millisecondsSinceEpoch: Int64.random(in: 0..<50, using: &generator)), sessionId: "ses_\(i * 7919 % 1009)_\(i)")
            }
            let expected = entries.map { ($0.deadline.millisecondsSinceEpoch, $0.sessionId) }.sorted { $0 < $1 }
            var pushed = DeadlineHeap()
            for e in entries { pushed.push(e.deadline, e.sessionId) }
            #expect(pushed.count == size)
            #expect(drain(&pushed).elementsEqual(expected, by: ==))
            var built = DeadlineHeap(unordered: entries)
            #expect(drain(&built).elementsEqual(expected, by: ==))
        }
    }

    @Test("pushes between pops keep the order")
    func interleaved() {
        var heap = DeadlineHeap()
        var model: [(Int64, String)] = []
        for step in 0..<2000 {
            if step % 3 == 2, let top = heap.peek {
                let first = model.min { $0 < $1 }!
                #expect(top.deadline.millisecondsSinceEpoch == first.0 && top.sessionId == first.1)
                heap.pop()
                model.remove(at: model.firstIndex { $0 == first }!)
            } else {
                let d = Int64(step * 37 % 101)
                heap.push(Timestamp(millisecondsSinceEpoch: d), "s\(step)")
                model.append((d, "s\(step)"))
            }
        }
        #expect(heap.count == model.count)
    }
}
