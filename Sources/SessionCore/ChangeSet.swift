/// Everything one engine operation changed: the final state of each changed session and rep, and the
/// stored events in the order they were appended. The server uses it to notify watchers.
public struct ChangeSet: Sendable, Hashable {
    /// The final state of every session the operation changed, in order of first change.
    public private(set) var sessions: [Session] = []
    /// The events appended (with their store-assigned cursor and sequence), in append order.
    public private(set) var events: [Event] = []
    /// The final state of every rep the operation changed, in order of first change.
    public private(set) var reps: [Rep] = []

    /// An empty change set.
    public init() {}

    /// Whether nothing changed.
    public var isEmpty: Bool {
        sessions.isEmpty && events.isEmpty && reps.isEmpty
    }

    /// Records the latest state of a session (replacing an earlier state of the same session).
    public mutating func record(_ session: Session) {
        if let index = sessions.firstIndex(where: { $0.id == session.id }) {
            sessions[index] = session
        } else {
            sessions.append(session)
        }
    }

    /// Records the latest state of a rep (replacing an earlier state of the same rep).
    public mutating func record(_ rep: Rep) {
        if let index = reps.firstIndex(where: { $0.id == rep.id }) {
            reps[index] = rep
        } else {
            reps.append(rep)
        }
    }

    /// Records an appended event.
    public mutating func record(_ event: Event) {
        events.append(event)
    }

    /// Appends everything `other` recorded.
    public mutating func merge(_ other: ChangeSet) {
        other.sessions.forEach { record($0) }
        other.reps.forEach { record($0) }
        events.append(contentsOf: other.events)
    }
}
