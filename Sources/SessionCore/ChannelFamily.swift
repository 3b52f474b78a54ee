/// The product family a channel type belongs to; it decides permissions and which features apply.
public enum ChannelFamily: String, Sendable, CaseHashable {
    /// Enhanced In-App Chat and Enhanced Web Chat v1/v2.
    case enhancedChat = "ENHANCED_CHAT"
    /// Enhanced WhatsApp, Facebook Messenger, SMS, Apple Messages for Business and LINE.
    case enhancedMessaging = "ENHANCED_MESSAGING"
    /// Bring Your Own Channel.
    case bringYourOwnChannel = "BRING_YOUR_OWN_CHANNEL"
    /// The legacy Standard Facebook Messenger and Standard SMS channels.
    case standard = "STANDARD"

    /// The permissions a rep must hold to send and receive messages on channels of this family,
    /// in a fixed order (so error messages are deterministic).
    ///
    /// - Enhanced Chat: the `ENHANCED_CHAT_USER` permission-set licence **and** the `ENHANCED_CHAT_REP`
    ///   user permission.
    /// - Enhanced Messaging and Bring Your Own Channel: `MESSAGING_AGENT`.
    /// - Standard (legacy) channels: `MESSAGING_AGENT` as well. The source document is silent on legacy
    ///   channels; we require the generic messaging permission so that routing never hands a session to a
    ///   rep who holds no messaging permission at all.
    public var requiredPermissions: [Permission] {
        switch self {
        case .enhancedChat:
            return [.enhancedChatUser, .enhancedChatRep]
        case .enhancedMessaging, .bringYourOwnChannel, .standard:
            return [.messagingAgent]
        }
    }

    /// Whether sessions on this family may be marked `INACTIVE` (all but the standard channels).
    public var supportsInactiveStatus: Bool {
        self != .standard
    }

    /// Whether a customer inactivity timeout may be configured (Enhanced Chat and Bring Your Own Channel).
    public var supportsCustomerInactivityTimeout: Bool {
        self == .enhancedChat || self == .bringYourOwnChannel
    }
}
