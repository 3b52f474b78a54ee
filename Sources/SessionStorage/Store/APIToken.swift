public import SessionCore

/// An API bearer token as the store keeps it: the hash of the secret (never the
/// secret itself), the role it grants, and its lifecycle.
public struct APIToken: Sendable, Hashable {
    /// The role a token grants. Raw values match `Actor.Kind`.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        /// A channel integration.
        case service = "SERVICE"
        /// One rep (`repId`).
        case rep = "REP"
        /// An administrator.
        case admin = "ADMIN"
    }

    /// The hash of the secret (for example SHA-256); the primary key.
    public var hash: [UInt8]
    /// The role the token grants.
    public var role: Role
    /// The rep the token acts as: set for `.rep` tokens only.
    public var repId: String?
    /// A human-readable label (who or what holds the token).
    public var name: String
    /// When the token was created.
    public var createdAt: Timestamp
    /// When the token was revoked, or `nil` while it is valid.
    public var revokedAt: Timestamp?

    /// Creates a token record.
    public init(
        hash: [UInt8], role: Role, repId: String? = nil, name: String, createdAt: Timestamp, revokedAt: Timestamp? = nil
    ) {
        self.hash = hash
        self.role = role
        self.repId = repId
        self.name = name
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    /// True until the token is revoked.
    public var isActive: Bool { revokedAt == nil }

    /// The actor a call authenticated by this token acts as: the rep for a rep
    /// token, otherwise the token's name under its role.
    public var actor: SessionCore.Actor {
        switch role {
        case .service: .service(name)
        case .rep: .rep(repId ?? name)
        case .admin: .admin(name)
        }
    }
}
