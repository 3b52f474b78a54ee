/// The kind of messaging channel a `Channel` deploys. Raw values are the proto-style names.
public enum ChannelType: String, Sendable, CaseHashable {
    /// Enhanced In-App Chat (Enhanced Chat family).
    case enhancedInAppChat = "ENHANCED_IN_APP_CHAT"
    /// Enhanced Web Chat v1 (Enhanced Chat family).
    case enhancedWebChatV1 = "ENHANCED_WEB_CHAT_V1"
    /// Enhanced Web Chat v2 (Enhanced Chat family).
    case enhancedWebChatV2 = "ENHANCED_WEB_CHAT_V2"
    /// Enhanced WhatsApp (Enhanced Messaging family).
    case enhancedWhatsApp = "ENHANCED_WHATSAPP"
    /// Enhanced Facebook Messenger (Enhanced Messaging family).
    case enhancedFacebookMessenger = "ENHANCED_FACEBOOK_MESSENGER"
    /// Enhanced SMS (Enhanced Messaging family).
    case enhancedSMS = "ENHANCED_SMS"
    /// Enhanced Apple Messages for Business (Enhanced Messaging family).
    case enhancedAppleMessagesForBusiness = "ENHANCED_APPLE_MESSAGES_FOR_BUSINESS"
    /// Enhanced LINE (Enhanced Messaging family).
    case enhancedLINE = "ENHANCED_LINE"
    /// Bring Your Own Channel.
    case bringYourOwnChannel = "BRING_YOUR_OWN_CHANNEL"
    /// Legacy Standard Facebook Messenger: no Inactive status.
    case standardFacebookMessenger = "STANDARD_FACEBOOK_MESSENGER"
    /// Legacy Standard SMS: no Inactive status.
    case standardSMS = "STANDARD_SMS"

    /// The family this type belongs to.
    public var family: ChannelFamily {
        switch self {
        case .enhancedInAppChat, .enhancedWebChatV1, .enhancedWebChatV2:
            return .enhancedChat
        case .enhancedWhatsApp, .enhancedFacebookMessenger, .enhancedSMS,
             .enhancedAppleMessagesForBusiness, .enhancedLINE:
            return .enhancedMessaging
        case .bringYourOwnChannel:
            return .bringYourOwnChannel
        case .standardFacebookMessenger, .standardSMS:
            return .standard
        }
    }
}
