public import SessionCore

/// An API bearer token as the store keeps it: the hash of the secret (never the
/// secret itself), the role it grants, and its lifecycle.
public struct APIToken: Sendable, Hashable {
    /// The role a token grants. Raw values match `Actor.Kind`.
    public enum Role: String, Sendable, CaseHashable {
        /// A channel integration.
        case service = "SERVICE"
        /// One rep (`repId`).
        case rep = "REP"
        /// An administrator of one tenant.
        case admin = "ADMIN"
        /// Manages tenants; belongs to none and acts in none.
        case `operator` = "OPERATOR"
    }

    /// The tenant that exists from the first start (the README's walk-through, the bootstrap admin).
    public static let defaultTenant = "default"

    /// The hash of the secret (for example SHA-256); the primary key.
    public var hash: [UInt8]
    /// The role the token grants.
    public var role: Role
    /// The rep the token acts as: set for `.rep` tokens only.
    public var repId: String?
    /// The tenant the token acts in; nil for `.operator` tokens only.
    public var tenantId: String?
    /// A human-readable label (who or what holds the token).
    public var name: String
    /// When the token was created.
    public var createdAt: Timestamp
    /// When the token was revoked, or `nil` while it is valid.
    public var revokedAt: Timestamp?

    /// Creates a token record.
    public init(
        hash: [UInt8], role: Role, tenantId: String? = APIToken.defaultTenant, repId: String? = nil, name: String,
        createdAt: Timestamp, revokedAt: Timestamp? = nil
    ) {
        self.hash = hash
        self.role = role
        self.tenantId = role == .operator ? nil : (tenantId ?? Self.defaultTenant)
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
        case .admin, .operator: .admin(name)
        }
    }
}

extension APIToken {
    /// The token as stored with `tenantId` (nil only for operator tokens).
    func withTenant(_ tenantId: String?) -> APIToken {
        var copy = self
        copy.tenantId = role == .operator ? nil : tenantId
        return copy
    }
}

/// A tenant in the registry: a namespace of its own for every channel, rep, session, event,
/// message id and token (its data lives in a partition of its own: see docs/ARCHITECTURE.md).
public struct TenantRecord: Sendable, Hashable {
    public var id: String
    public var displayName: String
    public var createdAt: Timestamp
    /// When an operator disabled it; nil while it is enabled.
    public var disabledAt: Timestamp?

    public init(id: String, displayName: String, createdAt: Timestamp, disabledAt: Timestamp? = nil) {
        self.id = id
        self.displayName = displayName
        self.createdAt = createdAt
        self.disabledAt = disabledAt
    }

    public var isEnabled: Bool { disabledAt == nil }
}
