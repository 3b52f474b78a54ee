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
        guard (token.role == .rep) == (token.repId != nil) else {
            throw DomainError.invalidArgument(
                token.role == .rep
                    ? "token \(token.name) has role REP and needs a rep id"
                    : "token \(token.name) has role \(token.role.rawValue) and must not name a rep")
        }
        do {
            try db.run(
                "INSERT INTO tokens (\(Self.tokenColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                [token.hash, token.role.rawValue, token.repId, token.name, token.createdAt, token.revokedAt])
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
}
