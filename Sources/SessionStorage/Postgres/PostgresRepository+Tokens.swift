public import SessionCore

/// API bearer tokens (not part of `SessionRepository`: the RPC layer's concern).
extension PostgresRepository {
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
        let inserted = try db.run(
            """
            INSERT INTO tokens (\(Self.tokenColumns)) VALUES ($1::bytea, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (token_hash) DO NOTHING
            """,
            [token.hash, token.role.rawValue, token.repId, token.name, token.createdAt, token.revokedAt, token.tenantId])
        guard inserted == 1 else {
            // Never echo the hash: it identifies a credential.
            throw DomainError.alreadyExists("a token with the same secret already exists (new token \(token.name))")
        }
    }

    /// The token whose secret hashes to `hash` (revoked ones included: check `isActive`), or `nil`.
    public func token(hash: [UInt8]) throws -> APIToken? {
        try reader("token(hash:)").queryOne(
            "SELECT \(Self.tokenColumns) FROM tokens WHERE token_hash = $1::bytea", [hash], Self.decodeToken)
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
        try db.run(
            "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2::bytea AND revoked_at IS NULL", [time, hash])
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
            "INSERT INTO tenants (\(Self.tenantColumns)) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            [tenant.id, tenant.displayName, tenant.createdAt, tenant.disabledAt])
        guard inserted == 1 else { throw DomainError.alreadyExists("tenant \(tenant.id) already exists") }
    }

    /// Sets or clears a tenant's `disabled_at` (a disabled tenant keeps its first time) and
    /// returns it; `NOT_FOUND` if there is no such tenant.
    @discardableResult
    public func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord {
        let db = try writer("setTenantDisabled")
        if let time {
            try db.run("UPDATE tenants SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL", [time, id])
        } else {
            try db.run("UPDATE tenants SET disabled_at = NULL WHERE id = $1", [id])
        }
        guard let tenant = try reader("setTenantDisabled").queryOne(
            "SELECT \(Self.tenantColumns) FROM tenants WHERE id = $1", [id], Self.decodeTenant)
        else { throw DomainError.notFound("tenant \(id) does not exist") }
        return tenant
    }
}
