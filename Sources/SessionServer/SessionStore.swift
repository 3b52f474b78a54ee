public import SessionCore
public import SessionStorage

/// What the server needs from storage: one transaction per engine operation,
/// plus API tokens. `SQLiteStore` (embedded) and `PostgresStore` (shared by
/// several instances) implement it.
///
/// A write closure may run more than once (PostgreSQL retries it after a
/// serialization conflict or a connection that died before COMMIT), so it
/// must have no effect outside the repository it is given.
public protocol SessionStore: Sendable {
    /// Runs `body` in one serialized write transaction; commits when it returns.
    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T
    /// Runs `body` in a read-only snapshot.
    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T
    func insertToken(_ token: APIToken) throws
    func token(hash: [UInt8]) throws -> APIToken?
    func listTokens() throws -> [APIToken]
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken
    /// The tenant registry (kept in the main store).
    func tenants() throws -> [TenantRecord]
    func insertTenant(_ tenant: TenantRecord) throws
    func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord
    /// Server settings by key (absent ones left out).
    func settings(_ keys: [String]) throws -> [String: Int64]
    /// Stores settings durably, in one transaction.
    func setSettings(_ values: [String: Int64]) throws
}

extension SessionStore {
    public func settings(_ keys: [String]) throws -> [String: Int64] {
        try read { repo in
            var found: [String: Int64] = [:]
            for key in keys { if let value = try repo.setting(key) { found[key] = value } }
            return found
        }
    }

    public func setSettings(_ values: [String: Int64]) throws {
        try write { repo in for (key, value) in values { try repo.setSetting(key, value) } }
    }
}

extension SQLiteStore: SessionStore {
    public func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try write { (repo: SQLiteRepository) throws -> T in
            var r: any SessionRepository = repo
            return try body(&r)
        }
    }

    public func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try read { (repo: SQLiteRepository) throws -> T in try body(repo) }
    }
}

extension PostgresStore: SessionStore {
    public func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try write { (repo: PostgresRepository) throws -> T in
            var r: any SessionRepository = repo
            return try body(&r)
        }
    }

    public func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try read { (repo: PostgresRepository) throws -> T in try body(repo) }
    }
}
