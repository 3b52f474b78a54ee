/// Reps: creation and settings (admin), presence, reads and workload.
extension SessionEngine {
    /// Creates a rep (admin only). `idleSince` starts at `now`; a rep created `AVAILABLE` triggers routing.
    public func createRep(
        id: String, displayName: String, capacity: Int,
        permissions: Set<Permission> = [], presence: Presence = .offline,
        by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> RepOutcome {
        try requireAdmin(actor, to: "create reps")
        let rep = Rep(id: id, displayName: displayName, capacity: capacity, presence: presence,
                      permissions: permissions, usedCapacity: 0, idleSince: now)
        try rep.validate()
        if try repo.rep(id: id) != nil {
            throw DomainError.alreadyExists("rep \(id) already exists")
        }
        var changes = ChangeSet()
        try save(rep, in: &repo, changes: &changes)
        if presence == .available {
            try route(now: now, in: &repo, changes: &changes)
        }
        return RepOutcome(rep: try requireRep(id, in: repo), changes: changes)
    }

    /// Changes a rep's display name and/or capacity (admin only), then routes (more capacity may place
    /// waiting sessions). Lowering capacity below the used capacity is allowed: the rep simply gets no
    /// new sessions until enough end.
    public func updateRep(
        id: String, _ update: RepUpdate, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> RepOutcome {
        try requireAdmin(actor, to: "update reps")
        var rep = try requireRep(id, in: repo)
        if let displayName = update.displayName { rep.displayName = displayName }
        if let capacity = update.capacity { rep.capacity = capacity }
        try rep.validate()
        var changes = ChangeSet()
        try save(rep, in: &repo, changes: &changes)
        try route(now: now, in: &repo, changes: &changes)
        return RepOutcome(rep: try requireRep(id, in: repo), changes: changes)
    }

    /// Sets a rep's presence: a rep for itself, an admin for anyone.
    ///
    /// - `AVAILABLE` (from another presence): `idleSince = now`, then routing runs.
    /// - `BUSY`: the rep keeps its sessions and gets no new ones.
    /// - `OFFLINE`: the rep's `ACTIVE` sessions go back to `WAITING` (reason `REP_WENT_OFFLINE`, queued at
    ///   `now`) and are routed to other reps; its `NEW` and `INACTIVE` sessions stay with it.
    /// Setting the current presence again changes nothing.
    public func setPresence(
        repId: String, _ presence: Presence, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> RepOutcome {
        if actor.kind == .service || (actor.kind == .rep && actor.id != repId) {
            throw DomainError.permissionDenied(
                "\(actor.kind == .rep ? "rep \(actor.id)" : "role \(actor.kind.rawValue)") may not set the presence of rep \(repId); a rep sets its own presence, an admin anyone's"
            )
        }
        var rep = try requireRep(repId, in: repo)
        var changes = ChangeSet()
        guard rep.presence != presence else {
            return RepOutcome(rep: rep, changes: changes)
        }
        rep.presence = presence
        switch presence {
        case .available:
            rep.idleSince = now
            try save(rep, in: &repo, changes: &changes)
        case .busy:
            try save(rep, in: &repo, changes: &changes)
        case .offline:
            try save(rep, in: &repo, changes: &changes)
            for active in try repo.sessions(repId: repId, status: .active) {
                var session = active
                try leaveActive(&session, in: &repo, changes: &changes)
                session.repId = nil
                session.queuedAt = now
                try transition(&session, to: .waiting, reason: .repWentOffline, actor: actor, now: now,
                               eventRepId: repId, in: &repo, changes: &changes)
            }
        }
        if presence != .busy {
            try route(now: now, in: &repo, changes: &changes)
        }
        return RepOutcome(rep: try requireRep(repId, in: repo), changes: changes)
    }

    /// The rep `id`: admins and services read any rep, a rep only itself.
    public func getRep(_ id: String, by actor: Actor, in repo: some SessionRepository) throws -> Rep {
        try requireReader(actor, ofRep: id, to: "read rep \(id)")
        return try requireRep(id, in: repo)
    }

    /// Reps ordered by id, one page at a time (admins and services only).
    public func listReps(
        pageSize: Int = 0, pageToken: String? = nil, by actor: Actor, in repo: some SessionRepository
    ) throws -> Page<Rep> {
        try requireReader(actor, ofRep: nil, to: "list reps")
        let size = try resolvePageSize(pageSize)
        try IdentifierRules.validatePageToken(pageToken)
        return makePage(try repo.reps(after: pageToken, limit: size + 1), pageSize: size, id: \.id)
    }

    /// A rep's capacity, used and free units, and the `ACTIVE` sessions behind them
    /// (admins and services any rep, a rep only itself).
    public func workload(repId: String, by actor: Actor, in repo: some SessionRepository) throws -> Workload {
        try requireReader(actor, ofRep: repId, to: "read the workload of rep \(repId)")
        let rep = try requireRep(repId, in: repo)
        return Workload(rep: rep, activeSessions: try repo.sessions(repId: repId, status: .active))
    }
}
