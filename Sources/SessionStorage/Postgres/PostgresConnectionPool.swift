internal import Dispatch
internal import Foundation

/// Up to `capacity` connections, opened on first need and lent out one
/// closure at a time.
///
/// A connection goes back to the idle list only if it is healthy and outside
/// any transaction; anything else (a lost connection, a failed rollback) is
/// closed, and the next borrower opens a fresh one. Idle connections are
/// checked before they are lent (`isAliveAfterIdling`), so those that a
/// database restart killed are dropped without costing a failed call.
///
/// `@unchecked Sendable`: `idle` and `open` are only touched under `lock`, and
/// a connection is used by exactly one thread between checkout and return, so
/// no `PGconn` is ever used by two threads at once.
final class PostgresConnectionPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private let permits: DispatchSemaphore
    private let configuration: PostgresConnection.Configuration
    /// At most this many connections exist at once.
    let capacity: Int

    init(configuration: PostgresConnection.Configuration, capacity: Int) {
        self.configuration = configuration
        self.capacity = max(1, capacity)
        permits = DispatchSemaphore(value: self.capacity)
    }

    /// Runs `body` with a connection (waiting while all are lent out). `reused`
    /// is true when the connection was opened before this call, so it may have
    /// died unnoticed since; a failure to connect throws a ``PostgresError``
    /// with `connectionLost` set.
    func withConnection<T>(_ body: (_ connection: PostgresConnection, _ reused: Bool) throws -> T) throws -> T {
        permits.wait()
        defer { permits.signal() }
        let connection: PostgresConnection
        let reused: Bool
        if let pooled = takeIdle() {
            connection = pooled
            reused = true
        } else {
            connection = try PostgresConnection(configuration: configuration)
            reused = false
        }
        defer { giveBack(connection) }
        return try body(connection, reused)
    }

    /// Closes every idle connection (after the database went away they are all dead).
    func closeIdleConnections() {
        lock.lock()
        let closing = idle
        idle.removeAll()
        lock.unlock()
        _ = closing  // PQfinish runs in their deinit, outside the lock
    }

    /// How many connections are idle.
    var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }

    private func takeIdle() -> PostgresConnection? {
        while true {
            lock.lock()
            let candidate = idle.popLast()
            lock.unlock()
            guard let candidate else { return nil }
            if candidate.isAliveAfterIdling() { return candidate }
            // Dead: dropping it closes it; try the next one.
        }
    }

    private func giveBack(_ connection: PostgresConnection) {
        guard connection.isIdle else { return }  // closed by deinit
        lock.lock()
        idle.append(connection)
        lock.unlock()
    }
}
