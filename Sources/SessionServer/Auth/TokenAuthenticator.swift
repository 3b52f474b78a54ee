import Dispatch
public import RPC
public import SessionCore
public import SessionStorage
import Synchronization

/// Who is calling: the token they presented and the actor it makes them.
public struct Principal: Sendable {
    public let token: APIToken
    /// Short, non-secret id of the token (hex of the first 6 bytes of its hash).
    public let tokenID: String
    public var actor: SessionCore.Actor { token.actor }
}

/// Resolves `authorization: Bearer <token>` metadata to a principal.
///
/// Tokens are stored as SHA-256 hashes only. A presented token is hashed and
/// looked up by its hash, so no comparison ever touches the secret itself;
/// the final check compares the hashes in constant time. Lookups are cached
/// for a few seconds; revoking through this server clears the cache at once.
public final class TokenAuthenticator: Sendable {
    private let store: any SessionStore
    private let cache = Mutex<[String: (principal: Principal, expires: UInt64)]>([:])
    private static let cacheNanos: UInt64 = 5_000_000_000
    private static let cacheLimit = 10_000

    public init(store: any SessionStore) {
        self.store = store
    }

    /// The token id shown to users for a token hash.
    public static func tokenID(hash: [UInt8]) -> String { hex(hash.prefix(6)) }

    /// The length of every token id (12 hex digits); a longer one names no token.
    public static let maxTokenIDLength = 12

    /// The stored hash of a secret.
    public static func hash(secret: String) -> [UInt8] { SHA256.hash(Array(secret.utf8)) }

    /// A new random bearer secret: `sst_` + 48 hex digits (192 bits).
    public static func newSecret() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return "sst_" + hex(bytes)
    }

    /// Authenticates the call or throws UNAUTHENTICATED.
    public func authenticate(_ context: RPCServerContext) throws(RPCError) -> Principal {
        try authenticate(metadata: context.metadata)
    }

    /// Authenticates a call from its metadata or throws UNAUTHENTICATED.
    public func authenticate(metadata: RPCMetadata) throws(RPCError) -> Principal {
        guard let header = metadata["authorization"] else {
            throw RPCError(.unauthenticated, "missing 'authorization: Bearer <token>' metadata")
        }
        let now = DispatchTime.now().uptimeNanoseconds
        // Keyed by the header as sent: a client sends the same one on every call, and a hit then
        // costs one lookup, no parsing.
        if let hit = cache.withLock({ $0[header] }), hit.expires > now {
            return hit.principal
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            throw RPCError(.unauthenticated, "authorization metadata must be 'Bearer <token>'")
        }
        let secret = String(parts[1]).trimmingSpaces()
        let hash = Self.hash(secret: secret)
        let stored: APIToken?
        do {
            stored = try store.token(hash: hash)
        } catch {
            throw RPCError(.unavailable, "cannot check the token: the store is unavailable")
        }
        guard let token = stored, constantTimeEqual(token.hash, hash), token.isActive else {
            throw RPCError(.unauthenticated, "unknown or revoked token")
        }
        let principal = Principal(token: token, tokenID: Self.tokenID(hash: hash))
        cache.withLock { c in
            if c.count >= Self.cacheLimit { c.removeAll() }
            c[header] = (principal, now + Self.cacheNanos)
        }
        return principal
    }

    /// Forgets cached lookups (after a revocation).
    public func invalidate() {
        cache.withLock { $0.removeAll() }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        while s.first == " " { s = s.dropFirst() }
        return String(s)
    }
}
