/// Where a customer message goes.
public enum CustomerMessageTarget: Sendable, Hashable {
    /// The open session of this conversation, or a new session on `channelId` if none is open.
    /// `channelId` may be empty when the conversation has an open session (or for a retry).
    case conversation(id: String, channelId: String)
    /// This session; if it has ended, the conversation's open session or a new one on the same channel.
    case session(id: String)
}
