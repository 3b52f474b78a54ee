/// Whether a rep may send and receive on a channel, and if not, which permissions are missing.
public struct PermissionCheck: Sendable, Hashable {
    /// The rep checked.
    public var repId: String
    /// The channel checked.
    public var channelId: String
    /// The channel's type.
    public var channelType: ChannelType
    /// The permissions the channel requires that the rep lacks, in canonical order.
    public var missing: [Permission]

    /// Creates a check result.
    public init(repId: String, channelId: String, channelType: ChannelType, missing: [Permission]) {
        self.repId = repId
        self.channelId = channelId
        self.channelType = channelType
        self.missing = missing
    }

    /// True when nothing is missing.
    public var allowed: Bool {
        missing.isEmpty
    }
}
