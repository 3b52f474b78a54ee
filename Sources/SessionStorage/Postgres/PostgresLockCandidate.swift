import Foundation

/// One connection an instance keeps for trying partition locks, shared by all its partitions'
/// journals: a standby tries every unowned tenant every 100 ms, and a kept connection per tenant
/// made the connections grow with tenants times instances. A try that wins turns the connection
/// into that partition's lock connection (renamed after it); the next try opens another.
public final class PostgresLockCandidate: @unchecked Sendable {
    /// Guarded by `lock` (a connection is used by one thread at a time: whoever took it).
    private var idle: (connection: PostgresConnection, key: PostgresConnection.Configuration)?
    private let lock = NSLock()

    public init() {}

    /// The kept connection if it was opened like `configuration` (the application name aside),
    /// else a new one.
    func take(_ configuration: PostgresConnection.Configuration) throws -> PostgresConnection {
        let key = Self.key(configuration)
        let kept = lock.withLock { () -> PostgresConnection? in
            guard let held = idle, held.key == key else { return nil }
            idle = nil
            return held.connection
        }
        return try kept ?? PostgresConnection(configuration: configuration)
    }

    /// Keeps `connection` for the next try (it holds no lock: its try failed).
    func giveBack(_ connection: PostgresConnection, _ configuration: PostgresConnection.Configuration) {
        let unused = lock.withLock { () -> PostgresConnection? in
            defer { idle = (connection, Self.key(configuration)) }
            return idle?.connection
        }
        _ = unused  // closed (PQfinish in its deinit) outside the lock
    }

    private static func key(_ configuration: PostgresConnection.Configuration) -> PostgresConnection.Configuration {
        var key = configuration
        key.applicationName = ""
        return key
    }
}
