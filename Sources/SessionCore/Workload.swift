/// A rep's capacity usage and the sessions behind it.
public struct Workload: Sendable, Hashable {
    /// The rep.
    public var rep: Rep
    /// The rep's ACTIVE sessions, ordered by id; their `heldCapacity` sums to `used`.
    public var activeSessions: [Session]

    /// Creates a workload.
    public init(rep: Rep, activeSessions: [Session]) {
        self.rep = rep
        self.activeSessions = activeSessions
    }

    /// Total capacity units.
    public var capacity: Int { rep.capacity }
    /// Units used by ACTIVE sessions (may exceed `capacity` on status-based returns).
    public var used: Int { rep.usedCapacity }
    /// Units free for routing (never negative).
    public var free: Int { rep.freeCapacity }
}
