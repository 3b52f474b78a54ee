/// Durable timers: the customer inactivity countdown and the auto-end of `INACTIVE` sessions.
///
/// Deadlines live on the session in the store; a sweeper calls these with the current time. Firing a
/// timer clears its deadline in the same transaction, so each fires once; and each is re-checked against
/// the session's current state, so a session that changed meanwhile (the customer replied, a rep ended
/// it) is left alone.
extension SessionEngine {
    /// Fires every due timer, up to `limit` sessions, earliest deadline first, in one transaction, then
    /// routes once if capacity was freed. Events are recorded by `Actor.system`.
    ///
    /// - Customer inactivity (`ACTIVE`, `inactivityDeadline <= now`) → `INACTIVE`, reason
    ///   `CUSTOMER_INACTIVITY_TIMEOUT`, with an auto-end deadline of `now + inactiveAutoEndAfter`.
    /// - Auto-end (`INACTIVE`, `autoEndDeadline <= now`) → `ENDED`, reason `AUTO_ENDED`.
    public func fireDueTimers(at now: Timestamp, limit: Int = 100, in repo: inout some SessionRepository) throws -> ChangeSet {
        guard limit > 0 else {
            throw DomainError.invalidArgument("timer batch limit \(limit) must be positive")
        }
        var changes = ChangeSet()
        var freed = false
        for due in try repo.sessionsWithDueDeadline(at: now, limit: limit) {
            if try fire(sessionId: due.id, now: now, in: &repo, changes: &changes) {
                freed = true
            }
        }
        if freed {
            try route(now: now, in: &repo, changes: &changes)
        }
        return changes
    }

    /// Fires the due timer of one session, if it still has one (one transaction per session for a
    /// sweeper); returns an empty change set when nothing is due or the session no longer exists.
    public func fireTimer(sessionId: String, at now: Timestamp, in repo: inout some SessionRepository) throws -> ChangeSet {
        var changes = ChangeSet()
        if try fire(sessionId: sessionId, now: now, in: &repo, changes: &changes) {
            try route(now: now, in: &repo, changes: &changes)
        }
        return changes
    }

    /// Fires the session's due timer against its current state; returns whether capacity was freed.
    func fire(sessionId: String, now: Timestamp, in repo: inout some SessionRepository, changes: inout ChangeSet) throws -> Bool {
        guard var session = try repo.session(id: sessionId) else { return false }
        if session.status == .active, let deadline = session.inactivityDeadline, deadline <= now {
            let autoEndAfter = try repo.channel(id: session.channelId)?.inactiveAutoEndAfter ?? Channel.defaultInactiveAutoEndAfter
            let freed = try leaveActive(&session, in: &repo, changes: &changes)
            // Counted from when the session went quiet, not from when the sweep noticed: after
            // downtime (or a long test-clock advance) a session idle for days ends at once.
            session.autoEndDeadline = deadline + autoEndAfter
            try transition(&session, to: .inactive, reason: .customerInactivityTimeout, actor: .system, now: now,
                           in: &repo, changes: &changes)
            return freed
        }
        if session.status == .inactive, let deadline = session.autoEndDeadline, deadline <= now {
            session.autoEndDeadline = nil
            try transition(&session, to: .ended, reason: .autoEnded, actor: .system, now: now, in: &repo, changes: &changes)
            return false
        }
        // A deadline that does not belong to the current status must never fire: drop it so the
        // sweeper does not find it again. (The engine clears deadlines itself; this is defensive.)
        let staleInactivity = session.status != .active && session.inactivityDeadline != nil
        let staleAutoEnd = session.status != .inactive && session.autoEndDeadline != nil
        if staleInactivity || staleAutoEnd {
            if staleInactivity { session.inactivityDeadline = nil }
            if staleAutoEnd { session.autoEndDeadline = nil }
            try save(&session, now: now, in: &repo, changes: &changes)
        }
        return false
    }
}
