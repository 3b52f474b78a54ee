import SessionCore
import Testing

@testable import SessionServer

@Suite("EventHub mailboxes")
struct EventHubTests {
    static func event(_ cursor: Int64, session: String = "s1") -> SessionCore.Event {
        SessionCore.Event(cursor: cursor, sessionId: session, sequence: cursor, time: Timestamp(millisecondsSinceEpoch: 0), actor: .system,
              from: nil, to: .waiting, repId: nil, reason: .created)
    }

    @Test("A watcher gets published events in order, only its session's, and nil once its mailbox overflowed")
    func mailboxes() {
        let hub = EventHub()
        let all = hub.subscribe(tickMillis: nil)
        let one = hub.subscribe(sessionId: "s2", tickMillis: nil)
        defer { all.cancel(); one.cancel() }
        hub.publish([Self.event(1), Self.event(2, session: "s2"), Self.event(3)])
        #expect(all.watcher.take()?.map(\.cursor) == [1, 2, 3])
        #expect(one.watcher.take()?.map(\.cursor) == [2])
        #expect(all.watcher.take()?.isEmpty == true)
        // More than the mailbox holds: the watcher is told to catch up from the store instead.
        hub.publish((4...Int64(EventHub.mailboxLimit + 10)).map { Self.event($0) })
        #expect(all.watcher.take() == nil)
        // And it collects again afterwards.
        hub.publish([Self.event(100_000)])
        #expect(all.watcher.take()?.map(\.cursor) == [100_000])
    }
}
