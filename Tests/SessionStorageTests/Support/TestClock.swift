import Foundation
import SessionCore

/// A clock that test threads share: each reading inside a write transaction
/// is 1 ms later than the previous one.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var now = Fixtures.t0

    func tick() -> Timestamp {
        lock.lock()
        defer { lock.unlock() }
        now += Milliseconds(1)
        return now
    }

    func peek() -> Timestamp {
        lock.lock()
        defer { lock.unlock() }
        return now
    }

    func advance(_ duration: Milliseconds) {
        lock.lock()
        now += duration
        lock.unlock()
    }
}
