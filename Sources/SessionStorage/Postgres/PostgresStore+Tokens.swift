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

    /// What the live instances own, as their heartbeats said.
    public struct LiveInstances: Sendable {
        /// Instances heard from within the window, this one included.
        public var count: Int
        /// The fewest tenants any other live instance owns (nil: no other).
        public var fewestOwnedByOthers: Int?
    }

    /// Records that the instance answering at `address` is alive now (the database's clock) and
    /// owns `owned` tenants; returns what the instances heard from within `window` own.
    public func heartbeat(instance address: String, owned: Int, window: Duration) throws -> LiveInstances {
        let windowMillis = Options.milliseconds(window)
        // Outside the store's write lock: a heartbeat never waits for (or delays) anything else.
        return try autocommit { connection in
            try connection.run(
                """
                INSERT INTO instances (address, heartbeat_at, owned) VALUES ($1, \(Self.databaseNowMillis), $2)
                ON CONFLICT (address) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, owned = excluded.owned
                """, [address, owned])
            // Instances silent for a long time are forgotten (a row per address ever seen otherwise).
            try connection.run("DELETE FROM instances WHERE heartbeat_at < \(Self.databaseNowMillis) - $1", [windowMillis * 100])
            return try connection.queryOne(
                """
                SELECT count(*), min(owned) FILTER (WHERE address <> $2) FROM instances
                WHERE heartbeat_at > \(Self.databaseNowMillis) - $1
                """, [windowMillis, address]) { row in
                LiveInstances(count: try row.int(0), fewestOwnedByOthers: row.isNull(1) ? nil : try row.int(1))
            } ?? LiveInstances(count: 1, fewestOwnedByOthers: nil)
        }
    }

    /// The partition locks (``PostgresPartitionJournal/lockKey(partition:)``) some session of this
    /// database holds now, in one round trip: a standby tries only the free ones, instead of one
    /// `pg_try_advisory_lock` per tenant it does not own every 100 ms (with 12 tenants on 3
    /// instances, ~170 round trips a second for locks that were all held).
    public func heldPartitionLocks() throws -> Set<Int64> {
        try autocommit { connection in
            Set(try connection.query(
                """
                SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks
                WHERE locktype = 'advisory' AND objsubid = 1 AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, []) { try $0.int64(0) })
        }
    }

    /// A clean stop: the instance is no longer counted.
    public func removeInstance(_ address: String) throws {
        try autocommit { connection in _ = try connection.run("DELETE FROM instances WHERE address = $1", [address]) }
    }
}
