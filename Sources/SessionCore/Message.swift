/// The record of a message accepted by the service, kept so that a retried message id is recognised
/// and answered without effect (idempotency). The text is kept to tell a retry from a reused id.
public struct Message: Sendable, Hashable {
    /// Who wrote a message.
    public enum Sender: String, Sendable, CaseHashable {
        /// The customer (posted by a channel integration).
        case customer = "CUSTOMER"
        /// The rep (or an admin on the rep's behalf).
        case rep = "REP"
    }

    /// The caller-chosen message id: an idempotency key unique per channel
    /// (two channels' providers may use the same ids).
    public var messageId: String
    /// The channel of the session the message was posted to: the scope of `messageId`.
    public var channelId: String
    /// The session the message was posted to.
    public var sessionId: String
    /// Who wrote it.
    public var sender: Sender
    /// The text.
    public var text: String
    /// When it was accepted.
    public var time: Timestamp

    /// Creates a message record.
    public init(messageId: String, channelId: String, sessionId: String, sender: Sender, text: String, time: Timestamp) {
        self.messageId = messageId
        self.channelId = channelId
        self.sessionId = sessionId
        self.sender = sender
        self.text = text
        self.time = time
    }
}
