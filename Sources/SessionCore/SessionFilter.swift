/// Which sessions to list; every non-nil field must match (logical AND).
public struct SessionFilter: Sendable, Hashable {
    /// Only sessions in this status.
    public var status: SessionStatus?
    /// Only sessions whose `repId` is this rep.
    public var repId: String?
    /// Only sessions on this channel.
    public var channelId: String?
    /// Only sessions of this conversation.
    public var conversationId: String?

    /// Creates a filter; the default matches every session.
    public init(status: SessionStatus? = nil, repId: String? = nil, channelId: String? = nil, conversationId: String? = nil) {
        self.status = status
        self.repId = repId
        self.channelId = channelId
        self.conversationId = conversationId
    }

    /// Refuses ids that no object could have (over-long, malformed) before any lookup.
    public func validate() throws(DomainError) {
        if let repId { try IdentifierRules.validateResourceID(repId, what: "rep id") }
        if let channelId { try IdentifierRules.validateResourceID(channelId, what: "channel id") }
        if let conversationId { try IdentifierRules.validateExternalID(conversationId, what: "conversation id") }
    }

    /// Whether `session` passes the filter.
    public func matches(_ session: Session) -> Bool {
        if let status, session.status != status { return false }
        if let repId, session.repId != repId { return false }
        if let channelId, session.channelId != channelId { return false }
        if let conversationId, session.conversationId != conversationId { return false }
        return true
    }
}
