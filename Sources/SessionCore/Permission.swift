/// A permission a rep may hold; raw values are the proto-style names used in error messages.
public enum Permission: String, Sendable, CaseHashable {
    /// The Enhanced Chat User permission-set licence.
    case enhancedChatUser = "ENHANCED_CHAT_USER"
    /// The Enhanced Chat Rep user permission.
    case enhancedChatRep = "ENHANCED_CHAT_REP"
    /// The Messaging Agent permission (Enhanced Messaging, Bring Your Own Channel, standard channels).
    case messagingAgent = "MESSAGING_AGENT"
}
