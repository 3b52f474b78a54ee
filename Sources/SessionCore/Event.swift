/// One recorded status transition of a session.
public struct Event: Sendable, Hashable {
    /// Global, store-assigned, strictly increasing position in the event log; 0 until stored.
    /// Watchers resume from the last cursor they saw.
    public var cursor: Int64
    /// The session that changed.
    public var sessionId: String
    /// Per-session number, 1 for the first event, gapless; 0 until stored (the store assigns it).
    public var sequence: Int64
    /// When the transition happened.
    public var time: Timestamp
    /// Who caused it (`Actor.system` for routing and timers).
    public var actor: Actor
    /// The status before (`nil` when the session was created by this event).
    public var from: SessionStatus?
    /// The status after.
    public var to: SessionStatus
    /// The rep involved: the owner after the transition, or the previous owner when the transition
    /// removes it (for example `REP_WENT_OFFLINE`, or tab-based `CUSTOMER_RETURNED`).
    public var repId: String?
    /// Why.
    public var reason: TransitionReason

    /// Creates an event; `cursor` and `sequence` are normally left 0 for the store to assign.
    public init(
        cursor: Int64 = 0,
        sessionId: String,
        sequence: Int64 = 0,
        time: Timestamp,
        actor: Actor,
        from: SessionStatus?,
        to: SessionStatus,
        repId: String?,
        reason: TransitionReason
    ) {
        self.cursor = cursor
        self.sessionId = sessionId
        self.sequence = sequence
        self.time = time
        self.actor = actor
        self.from = from
        self.to = to
        self.repId = repId
        self.reason = reason
    }
}
