public import SessionCore

/// API bearer tokens, each call in its own transaction.
extension PostgresStore {
    /// Stores a new token (see ``PostgresRepository/insertToken(_:)``).
    public func insertToken(_ token: APIToken) throws {
        try write { try $0.insertToken(token) }
    }

    /// The token whose secret hashes to `hash`, revoked or not, or `nil`.
    public func token(hash: [UInt8]) throws -> APIToken? {
        try read { try $0.token(hash: hash) }
    }

    /// Every token, revoked ones included, ordered by creation time, then name.
    public func listTokens() throws -> [APIToken] {
        try read { try $0.listTokens() }
    }

    /// Revokes a token and returns it (see ``PostgresRepository/revokeToken(hash:at:)``).
    @discardableResult
    public func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken {
        try write { try $0.revokeToken(hash: hash, at: time) }
    }

    /// Every tenant of the registry, ordered by id.
    public func tenants() throws -> [TenantRecord] {
        try read { try $0.tenants() }
    }

    /// Registers a tenant (see ``PostgresRepository/insertTenant(_:)``).
    public func insertTenant(_ tenant: TenantRecord) throws {
        try write { try $0.insertTenant(tenant) }
    }

    /// Disables (`time`) or enables (nil) a tenant and returns it.
    @discardableResult
    public func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord {
        try write { try $0.setTenantDisabled(id, at: time) }
    }

    // MARK: Live instances (tenants are spread over them)

    private static let databaseNowMillis = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    /// Records that the instance answering at `address` is alive now (the database's clock) and
    /// returns how many instances said so within the last `window` (this one included).
    public func heartbeat(instance address: String, window: Duration) throws -> Int {
        let windowMillis = Options.milliseconds(window)
        return try write { repo in
            try repo.connection.run(
                """
                INSERT INTO instances (address, heartbeat_at) VALUES ($1, \(Self.databaseNowMillis))
                ON CONFLICT (address) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
                """, [address])
            // Instances silent for a long time are forgotten (a row per address ever seen otherwise).
            try repo.connection.run("DELETE FROM instances WHERE heartbeat_at < \(Self.databaseNowMillis) - $1", [windowMillis * 100])
            return try repo.connection.queryOne(
                "SELECT count(*) FROM instances WHERE heartbeat_at > \(Self.databaseNowMillis) - $1", [windowMillis]) { try $0.int(0) } ?? 1
        }
    }

    /// A clean stop: the instance is no longer counted.
    public func removeInstance(_ address: String) throws {
        try write { repo in _ = try repo.connection.run("DELETE FROM instances WHERE address = $1", [address]) }
    }
}
