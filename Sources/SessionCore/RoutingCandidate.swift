/// What routing compares of a rep: a ``Rep``, or the compact ``RouteEntry`` a repository keeps as
/// an index (so that routing a session reads no rep it does not pick).
public protocol RoutingCandidate {
    var id: String { get }
    var capacity: Int { get }
    var usedCapacity: Int { get }
    var idleSince: Timestamp { get }
    /// Presence `AVAILABLE`.
    var isAvailable: Bool { get }
    func holdsPermissions(for family: ChannelFamily) -> Bool
}

extension RoutingCandidate {
    /// Capacity left for new sessions (never negative, even when over capacity).
    @inlinable
    public var freeCapacity: Int { max(0, capacity - usedCapacity) }
}

extension Rep: RoutingCandidate {
    public var isAvailable: Bool { presence == .available }
}

/// An available rep as routing sees it: its id, capacity figures and which channel families it may
/// work on (no permission set, no display name).
public struct RouteEntry: RoutingCandidate, Sendable, Equatable {
    public let id: String
    public var capacity: Int
    public var usedCapacity: Int
    public var idleSince: Timestamp
    /// Bit `family.bit`: the rep holds the permissions of that channel family.
    @usableFromInline
    var families: UInt8

    public init(_ rep: Rep) {
        id = rep.id
        capacity = rep.capacity
        usedCapacity = rep.usedCapacity
        idleSince = rep.idleSince
        families = 0
        for family in ChannelFamily.allCases where rep.holdsPermissions(for: family) { families |= 1 << family.bit }
    }

    @inlinable
    public var isAvailable: Bool { true }

    @inlinable
    public func holdsPermissions(for family: ChannelFamily) -> Bool {
        families & (1 << family.bit) != 0
    }
}

extension ChannelFamily {
    /// The family's bit in ``RouteEntry``'s mask.
    @inlinable
    var bit: Int {
        switch self {
        case .enhancedChat: 0
        case .enhancedMessaging: 1
        case .bringYourOwnChannel: 2
        case .standard: 3
        }
    }
}

extension SessionRepository {
    /// From ``availableReps()``: for repositories without a routing index (the SQL stores, tests).
    public func bestAvailableRep(for channel: Channel) throws -> Rep? {
        let reps = try availableReps()
        return SessionEngine.bestCandidate(for: channel, among: reps).map { reps[$0] }
    }

    public func hasAvailableCapacity() throws -> Bool {
        try availableReps().contains { $0.freeCapacity > 0 }
    }
}
