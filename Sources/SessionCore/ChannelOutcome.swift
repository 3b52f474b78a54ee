/// The result of a channel operation: the channel after the operation and everything that changed
/// (sessions routed because a setting such as the weight changed).
public struct ChannelOutcome: Sendable, Hashable {
    /// The channel after the operation.
    public var channel: Channel
    /// Every change made, with the events appended.
    public var changes: ChangeSet

    /// Creates an outcome.
    public init(channel: Channel, changes: ChangeSet) {
        self.channel = channel
        self.changes = changes
    }
}
