/// Channel configuration (admin) and reads.
extension SessionEngine {
    /// Creates a channel after validating it. Admin only; `ALREADY_EXISTS` if the id is taken.
    public func createChannel(
        _ channel: Channel, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> Channel {
        try requireAdmin(actor, to: "create channels")
        try channel.validate()
        if try repo.channel(id: channel.id) != nil {
            throw DomainError.alreadyExists("channel \(channel.id) already exists")
        }
        try repo.insertChannel(channel)
        return channel
    }

    /// Replaces a channel's settings after validating them, then routes (a lighter weight may let
    /// waiting sessions be placed). Admin only. The type cannot change (FAILED_PRECONDITION).
    /// Deadlines already set on sessions keep their values; new settings apply from the next change.
    public func updateChannel(
        _ channel: Channel, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> ChannelOutcome {
        try requireAdmin(actor, to: "update channels")
        try channel.validate()
        let existing = try requireChannel(channel.id, in: repo)
        if existing.type != channel.type {
            throw DomainError.failedPrecondition(
                "channel \(channel.id) is \(existing.type.rawValue); a channel's type cannot be changed to \(channel.type.rawValue)"
            )
        }
        var changes = ChangeSet()
        try repo.updateChannel(channel)
        try route(now: now, in: &repo, changes: &changes)
        return ChannelOutcome(channel: channel, changes: changes)
    }

    /// The channel `id`. Any role may read channels.
    public func getChannel(_ id: String, by actor: Actor, in repo: some SessionRepository) throws -> Channel {
        try requireChannel(id, in: repo)
    }

    /// Channels ordered by id, one page at a time. Any role may read channels.
    ///
    /// - Parameters:
    ///   - pageSize: 0 for the default (50); clamped to 1000.
    ///   - pageToken: `nextPageToken` of the previous page, or `nil` for the first page.
    public func listChannels(
        pageSize: Int = 0, pageToken: String? = nil, by actor: Actor, in repo: some SessionRepository
    ) throws -> Page<Channel> {
        let size = try resolvePageSize(pageSize)
        try IdentifierRules.validatePageToken(pageToken)
        return makePage(try repo.channels(after: pageToken, limit: size + 1), pageSize: size, id: \.id)
    }
}
