/// A service rep (agent) who receives routed sessions.
public struct Rep: Sendable, Hashable {
    /// The allowed range of `capacity`.
    public static let capacityRange: ClosedRange<Int> = 1...100

    /// The rep id: 1 to 128 characters from `[A-Za-z0-9._-]`.
    public var id: String
    /// A human-readable name (1 to 200 characters).
    public var displayName: String
    /// Capacity units (1...100).
    public var capacity: Int
    /// Routing presence.
    public var presence: Presence
    /// The permissions this rep holds; granting or revoking is an update of the rep.
    public var permissions: Set<Permission>
    /// The sum of the held capacity of this rep's `ACTIVE` sessions. It may exceed `capacity` after a
    /// customer returns to an `INACTIVE` session on a status-based channel.
    public var usedCapacity: Int
    /// The "idle longest" tie-break key for routing: the later of the time the rep last received a
    /// routed or assigned session and the time it last became `AVAILABLE`.
    public var idleSince: Timestamp

    /// Creates a rep. Call `validate()` before storing it.
    public init(
        id: String,
        displayName: String,
        capacity: Int,
        presence: Presence = .offline,
        permissions: Set<Permission> = [],
        usedCapacity: Int = 0,
        idleSince: Timestamp
    ) {
        self.id = id
        self.displayName = displayName
        self.capacity = capacity
        self.presence = presence
        self.permissions = permissions
        self.usedCapacity = usedCapacity
        self.idleSince = idleSince
    }

    /// The permissions required on channels of `family` that this rep lacks, in canonical order
    /// (empty when the rep may work on such channels).
    public func missingPermissions(for family: ChannelFamily) -> [Permission] {
        family.requiredPermissions.filter { !permissions.contains($0) }
    }

    /// Whether the rep holds every permission `family` requires (routing asks this of every
    /// candidate, so it allocates nothing).
    public func holdsPermissions(for family: ChannelFamily) -> Bool {
        switch family {
        case .enhancedChat: permissions.contains(.enhancedChatUser) && permissions.contains(.enhancedChatRep)
        case .enhancedMessaging, .bringYourOwnChannel, .standard: permissions.contains(.messagingAgent)
        }
    }

    /// Checks id, display name and capacity; throws `INVALID_ARGUMENT` naming the rep.
    public func validate() throws(DomainError) {
        try IdentifierRules.validateResourceID(id, what: "rep id")
        if displayName.isEmpty || displayName.allSatisfy(\.isWhitespace) {
            throw .invalidArgument("rep \(id) needs a non-empty display name")
        }
        if displayName.utf8.contains(0) {
            throw .invalidArgument("rep \(id) has a display name with a NUL character")
        }
        if displayName.count > IdentifierRules.maxDisplayNameLength {
            throw .invalidArgument("rep \(id) has a display name of \(displayName.count) characters; at most \(IdentifierRules.maxDisplayNameLength) are allowed")
        }
        if !Rep.capacityRange.contains(capacity) {
            throw .invalidArgument(
                "rep \(id) has capacity \(capacity); it must be between \(Rep.capacityRange.lowerBound) and \(Rep.capacityRange.upperBound)"
            )
        }
    }
}
