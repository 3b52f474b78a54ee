public import SessionCore

/// API bearer tokens, each call in its own transaction.
extension SQLiteStore {
    /// Stores a new token (see ``SQLiteRepository/insertToken(_:)``).
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

    /// Revokes a token and returns it (see ``SQLiteRepository/revokeToken(hash:at:)``).
    @discardableResult
    public func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken {
        try write { try $0.revokeToken(hash: hash, at: time) }
    }

    /// Every tenant of the registry, ordered by id.
    public func tenants() throws -> [TenantRecord] {
        try read { try $0.tenants() }
    }

    /// Registers a tenant (see ``SQLiteRepository/insertTenant(_:)``).
    public func insertTenant(_ tenant: TenantRecord) throws {
        try write { try $0.insertTenant(tenant) }
    }

    /// Disables (`time`) or enables (nil) a tenant and returns it.
    @discardableResult
    public func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord {
        try write { try $0.setTenantDisabled(id, at: time) }
    }
}
