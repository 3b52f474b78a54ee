/// The lifecycle status of a messaging session; raw values are the proto-style names.
public enum SessionStatus: String, Sendable, CaseHashable {
    /// Business-initiated, owned by a rep, waiting for the customer's first reply; uses no capacity.
    case new = "NEW"
    /// Queued for routing; uses no capacity.
    case waiting = "WAITING"
    /// Owned by a rep; uses the channel's capacity weight.
    case active = "ACTIVE"
    /// Marked inactive (by the rep or by the customer inactivity timer); uses no capacity.
    case inactive = "INACTIVE"
    /// Terminal.
    case ended = "ENDED"

    /// Whether the session is still open (any status but `ENDED`).
    public var isOpen: Bool {
        self != .ended
    }
}
