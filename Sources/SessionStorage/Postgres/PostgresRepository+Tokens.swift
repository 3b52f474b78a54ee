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
        guard (token.role == .rep) == (token.repId != nil) else {
            throw DomainError.invalidArgument(
                token.role == .rep
                    ? "token \(token.name) has role REP and needs a rep id"
                    : "token \(token.name) has role \(token.role.rawValue) and must not name a rep")
        }
        let inserted = try db.run(
            """
            INSERT INTO tokens (\(Self.tokenColumns)) VALUES ($1::bytea, $2, $3, $4, $5, $6)
            ON CONFLICT (token_hash) DO NOTHING
            """,
            [token.hash, token.role.rawValue, token.repId, token.name, token.createdAt, token.revokedAt])
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
}
