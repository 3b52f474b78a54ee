/// A message handed to the engine by a caller: its caller-chosen id (for idempotency) and text.
public struct IncomingMessage: Sendable, Hashable {
    /// The globally unique message id; a retry with the same id has no further effect.
    public var messageId: String
    /// The text.
    public var text: String

    /// Creates an incoming message.
    public init(messageId: String, text: String) {
        self.messageId = messageId
        self.text = text
    }
}
