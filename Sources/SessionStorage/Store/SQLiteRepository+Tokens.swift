public import SessionCore

/// API bearer tokens (not part of `SessionRepository`: the RPC layer's concern).
extension SQLiteRepository {
    /// Stores a new token.
    ///
    /// `INVALID_ARGUMENT` if the hash is empty or a rep id is given for a
    /// non-rep token (or missing for a rep token); `ALREADY_EXISTS` if a token
    /// with this hash exists.
    public func insertToken(_ token: APIToken) throws {
        let db = try writer("insertToken")
        guard !token.hash.isEmpty else {
            throw DomainError.invalidArgument("token \(token.name) has an empty hash")
        }
        guard (token.role == .operator) == (token.tenantId == nil) else {
            throw DomainError.invalidArgument("token \(token.name): only OPERATOR tokens have no tenant")
        }
        guard (token.role == .rep) == (token.repId != nil) else {
            throw DomainError.invalidArgument(
                token.role == .rep
                    ? "token \(token.name) has role REP and needs a rep id"
                    : "token \(token.name) has role \(token.role.rawValue) and must not name a rep")
        }
        do {
            try db.run(
                "INSERT INTO tokens (\(Self.tokenColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [token.hash, token.role.rawValue, token.repId, token.name, token.createdAt, token.revokedAt, token.tenantId])
        } catch let error as SQLiteError where error.constraint == .primaryKey {
            // Never echo the hash: it identifies a credential.
            throw DomainError.alreadyExists("a token with the same secret already exists (new token \(token.name))")
        }
    }

    /// The token whose secret hashes to `hash` (revoked ones included: check `isActive`), or `nil`.
    public func token(hash: [UInt8]) throws -> APIToken? {
        try reader("token(hash:)").queryOne(
            "SELECT \(Self.tokenColumns) FROM tokens WHERE token_hash = ?", [hash], Self.decodeToken)
    }

    /// Every token, revoked ones included, ordered by creation time, then name.
    public func listTokens() throws -> [APIToken] {
        try reader("listTokens()").query(
            "SELECT \(Self.tokenColumns) FROM tokens ORDER BY created_at, name, token_hash", [], Self.decodeToken)
    }

    /// Revokes the token with `hash` at `time` and returns it. Revoking a revoked
    /// token keeps its first revocation time. `NOT_FOUND` if there is no such token.
    @discardableResult
    public func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken {
        let db = try writer("revokeToken")
        try db.run("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL", [time, hash])
        guard let token = try token(hash: hash) else {
            throw DomainError.notFound("no such token")
        }
        return token
    }

    // MARK: The tenant registry (main database only)

    /// Every tenant, ordered by id.
    public func tenants() throws -> [TenantRecord] {
        try reader("tenants()").query("SELECT \(Self.tenantColumns) FROM tenants ORDER BY id", [], Self.decodeTenant)
    }

    /// Stores a new tenant; `ALREADY_EXISTS` if the id is taken.
    public func insertTenant(_ tenant: TenantRecord) throws {
        let db = try writer("insertTenant")
        let inserted = try db.run(
            "INSERT INTO tenants (\(Self.tenantColumns)) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [tenant.id, tenant.displayName, tenant.createdAt, tenant.disabledAt])
        guard inserted == 1 else { throw DomainError.alreadyExists("tenant \(tenant.id) already exists") }
    }

    /// Sets or clears a tenant's `disabled_at` (a disabled tenant keeps its first time) and
    /// returns it; `NOT_FOUND` if there is no such tenant.
    @discardableResult
    public func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord {
        let db = try writer("setTenantDisabled")
        if let time {
            try db.run("UPDATE tenants SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL", [time, id])
        } else {
            try db.run("UPDATE tenants SET disabled_at = NULL WHERE id = ?", [id])
        }
        guard let tenant = try reader("setTenantDisabled").queryOne(
            "SELECT \(Self.tenantColumns) FROM tenants WHERE id = ?", [id], Self.decodeTenant)
        else { throw DomainError.notFound("tenant \(id) does not exist") }
        return tenant
    }
}
