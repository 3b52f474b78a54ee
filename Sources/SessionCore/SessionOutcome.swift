/// The result of a session operation: the session the caller asked about and everything that changed
/// (including other sessions routed as a side effect).
public struct SessionOutcome: Sendable, Hashable {
    /// The session the operation was about, in its state after the operation.
    public var session: Session
    /// Every change made, with the events appended.
    public var changes: ChangeSet
    /// True when the request was recognised as a retry or an idempotent no-op (an open session already
    /// existed for `createSession`, or the message id was already accepted): nothing was changed.
    public var isDuplicate: Bool

    /// Creates an outcome.
    public init(session: Session, changes: ChangeSet, isDuplicate: Bool = false) {
        self.session = session
        self.changes = changes
        self.isDuplicate = isDuplicate
    }
}
