import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// Follows `events(afterCursor:)` on one store in a background thread, as a
/// `WatchEvents` stream does, and records what it saw.
final class EventWatcher: @unchecked Sendable {
    private let store: PostgresStore
    private let lock = NSLock()
    private var events: [Event] = []
    private var issues: [String] = []
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(store: PostgresStore) {
        self.store = store
    }

    var seen: [Event] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }

    var problems: [String] {
        lock.lock()
        defer { lock.unlock() }
        return issues
    }

    func start() {
        Thread { [self] in
            var cursor: Int64 = 0
            while true {
                lock.lock()
                let finishing = stopping
                lock.unlock()
                do {
                    let page = try store.read { try $0.events(afterCursor: cursor, limit: 50) }
                    lock.lock()
                    for event in page {
                        // Cursors are gapless: anything else is an event this watcher skipped.
                        if event.cursor != cursor + 1 { issues.append("after cursor \(cursor) came \(event.cursor)") }
                        cursor = event.cursor
                        events.append(event)
                    }
                    lock.unlock()
                    if page.isEmpty {
                        if finishing { break }
                        usleep(2_000)
                    }
                } catch {
                    lock.lock()
                    issues.append("\(error)")
                    lock.unlock()
                    break
                }
            }
            done.signal()
        }.start()
    }

    /// Stops after reading everything committed so far.
    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        done.wait()
    }
}
