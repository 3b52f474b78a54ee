/// Routing: placing `WAITING` sessions on `AVAILABLE` reps.
extension SessionEngine {
    /// Routes the queue: walks `WAITING` sessions in FIFO order (`queuedAt`, then id) and gives each to
    /// the best `AVAILABLE` rep that holds its channel's permissions and has free capacity ≥ the
    /// channel's weight — least utilised (`used / capacity`) first, then idle longest (earliest
    /// `idleSince`), then smallest id. A session that cannot be placed is skipped and does not block
    /// later sessions (of other channels or lighter weights).
    ///
    /// The engine calls this itself whenever a session queues, capacity frees or a rep becomes
    /// available; it is public so a sweeper can also run it. Assignments are recorded as `ROUTED`
    /// events by `Actor.system`.
    public func route(at now: Timestamp, in repo: inout some SessionRepository) throws -> ChangeSet {
        var changes = ChangeSet()
        try route(now: now, in: &repo, changes: &changes)
        return changes
    }

    func route(now: Timestamp, in repo: inout some SessionRepository, changes: inout ChangeSet) throws {
        // Most calls find the queue empty: look at it before reading every rep.
        var pending: [Session]? = try repo.waitingSessions(after: nil, limit: Self.routingBatchSize)
        guard pending?.isEmpty == false else { return }
        guard try repo.hasAvailableCapacity() else { return }
        var channels: [String: Channel] = [:]
        // Reps only lose capacity during one pass, so a channel that could not be placed stays
        // unplaceable for the rest of the pass: skip its sessions without looking for a rep again.
        var unplaceableChannels: Set<String> = []
        var position: QueuePosition?

        scan: while true {
            let batch = try pending ?? repo.waitingSessions(after: position, limit: Self.routingBatchSize)
            pending = nil
            for queued in batch {
                position = QueuePosition(queuedAt: queued.queuedAt ?? queued.updatedAt, sessionId: queued.id)
                if unplaceableChannels.contains(queued.channelId) { continue }
                let channel: Channel
                if let cached = channels[queued.channelId] {
                    channel = cached
                } else if let loaded = try repo.channel(id: queued.channelId) {
                    channels[loaded.id] = loaded
                    channel = loaded
                } else {
                    unplaceableChannels.insert(queued.channelId)
                    continue
                }
                // The repository sees every rep saved earlier in this pass.
                guard var rep = try repo.bestAvailableRep(for: channel) else {
                    unplaceableChannels.insert(channel.id)
                    continue
                }
                var session = queued
                assign(&session, to: &rep, weight: channel.capacityWeight, now: now)
                try save(rep, in: &repo, changes: &changes)
                try transition(&session, to: .active, reason: .routed, actor: .system, now: now, in: &repo, changes: &changes)
                if try !repo.hasAvailableCapacity() { break scan }
            }
            if batch.count < Self.routingBatchSize { break }
        }
    }

    /// The index of the rep that should get a session of `channel`, or `nil` if none can take it.
    @inlinable
    public static func bestCandidate<C: RoutingCandidate>(for channel: Channel, among reps: [C]) -> Int? {
        var best: Int?
        for (index, rep) in reps.enumerated() {
            guard rep.isAvailable,
                  rep.freeCapacity >= channel.capacityWeight,
                  rep.holdsPermissions(for: channel.family)
            else { continue }
            if let current = best, !isPreferred(rep, over: reps[current]) { continue }
            best = index
        }
        return best
    }

    /// Routing preference: lower utilisation, then idle longer, then smaller id.
    @inlinable
    static func isPreferred<C: RoutingCandidate>(_ lhs: C, over rhs: C) -> Bool {
        // Compare used/capacity exactly by cross-multiplying (capacities are positive).
        let left = lhs.usedCapacity * rhs.capacity
        let right = rhs.usedCapacity * lhs.capacity
        if left != right { return left < right }
        if lhs.idleSince != rhs.idleSince { return lhs.idleSince < rhs.idleSince }
        return lhs.id < rhs.id
    }
}
