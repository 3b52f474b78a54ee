public import SessionCore
public import SessionStorage

/// What the server needs from storage: one transaction per engine operation,
/// plus API tokens. SQLite implements it today; PostgreSQL joins later.
public protocol SessionStore: Sendable {
    /// Runs `body` in one serialized write transaction; commits when it returns.
    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T
    /// Runs `body` in a read-only snapshot.
    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T
    func insertToken(_ token: APIToken) throws
    func token(hash: [UInt8]) throws -> APIToken?
    func listTokens() throws -> [APIToken]
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken
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
