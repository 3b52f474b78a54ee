/// A rep's routing presence.
public enum Presence: String, Sendable, CaseHashable {
    /// Not working: gets no sessions; going offline re-queues the rep's `ACTIVE` sessions.
    case offline = "OFFLINE"
    /// Routable: receives `WAITING` sessions while free capacity allows.
    case available = "AVAILABLE"
    /// Keeps current sessions but receives no new ones.
    case busy = "BUSY"
}
