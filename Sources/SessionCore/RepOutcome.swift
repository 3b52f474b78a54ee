/// The result of a rep operation (create, update, presence, permissions): the rep after the operation
/// and everything that changed (sessions re-queued or routed as a side effect).
public struct RepOutcome: Sendable, Hashable {
    /// The rep after the operation.
    public var rep: Rep
    /// Every change made, with the events appended.
    public var changes: ChangeSet

    /// Creates an outcome.
    public init(rep: Rep, changes: ChangeSet) {
        self.rep = rep
        self.changes = changes
    }
}
