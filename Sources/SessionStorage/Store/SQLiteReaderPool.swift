internal import Dispatch
internal import Foundation

/// A fixed set of read-only connections lent out one closure at a time.
///
/// `@unchecked Sendable`: `idle` is only touched under `lock`, and a connection
/// is used by exactly one thread between `withConnection`'s checkout and
/// return, so no connection is ever used by two threads at once.
final class SQLiteReaderPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [SQLiteConnection]
    private let available: DispatchSemaphore

    init(connections: [SQLiteConnection]) {
        precondition(!connections.isEmpty, "a reader pool needs at least one connection")
        idle = connections
        available = DispatchSemaphore(value: connections.count)
    }

    /// Runs `body` with an idle connection, waiting for one if all are lent out.
    func withConnection<T>(_ body: (SQLiteConnection) throws -> T) rethrows -> T {
        available.wait()
        lock.lock()
        let connection = idle.removeLast()
        lock.unlock()
        defer {
            lock.lock()
            idle.append(connection)
            lock.unlock()
            available.signal()
        }
        return try body(connection)
    }
}
