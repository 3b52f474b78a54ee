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

    /// The kept connection if it was opened like `configuration` (name and schema aside), else a
    /// new one, opened without a schema: a try needs none, and the server's default stays the
    /// session's, so the one that wins sets only what its partition needs (``adopt(_:as:)``).
    func take(_ configuration: PostgresConnection.Configuration) throws -> PostgresConnection {
        let key = Self.key(configuration)
        let kept = lock.withLock { () -> PostgresConnection? in
            guard let held = idle, held.key == key else { return nil }
            idle = nil
            return held.connection
        }
        var plain = configuration
        plain.settings["search_path"] = nil
        return try kept ?? PostgresConnection(configuration: plain)
    }

    /// Keeps `connection` for the next try (it holds no lock: its try failed).
    func giveBack(_ connection: PostgresConnection, _ configuration: PostgresConnection.Configuration) {
        let unused = lock.withLock { () -> PostgresConnection? in
            defer { idle = (connection, Self.key(configuration)) }
            return idle?.connection
        }
        _ = unused  // closed (PQfinish in its deinit) outside the lock
    }

    /// What must match for a kept connection to serve another partition: everything but its name
    /// and its schema, which the partition that wins a try sets on it (``adopt(_:as:)``).
    private static func key(_ configuration: PostgresConnection.Configuration) -> PostgresConnection.Configuration {
        var key = configuration
        key.applicationName = ""
        key.settings["search_path"] = nil
        return key
    }

    /// Makes a connection from ``take(_:)`` that won a try look as if it had been opened for
    /// `configuration`: its application name and, for a tenant, its schema (its lock connection
    /// writes that tenant's `partition_owner`).
    static func adopt(_ connection: PostgresConnection, as configuration: PostgresConnection.Configuration) throws {
        try connection.run("SELECT set_config('application_name', $1, false)", [configuration.applicationName])
        if let schema = configuration.settings["search_path"] {
            try connection.run("SELECT set_config('search_path', $1, false)", [schema])
        }
    }
}
