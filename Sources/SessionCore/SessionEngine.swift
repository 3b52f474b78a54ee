/// The domain rules of the messaging session lifecycle: statuses and transitions, routing, capacity,
/// permissions, authorization and timers.
///
/// The engine is a plain value with no I/O, no clock and no locks. Each operation takes the caller
/// (`by actor`), the current time (`at now`) and the repository (`in repo`), which the caller has
/// opened as **one** store transaction; the operation either returns what it changed (commit) or throws
/// (roll back). A `DomainError` is the caller's error; any other error comes from the repository.
///
/// Only operations that create sessions need the `IDGenerator`; they are `mutating`.
public struct SessionEngine: Sendable {
    /// The default page size of listings.
    public static let defaultPageSize = 50
    /// The largest page size honoured; larger requests are clamped to it.
    public static let maxPageSize = 1_000
    /// How many queued sessions routing reads per repository call.
    static let routingBatchSize = 256

    /// Produces new session ids.
    public var ids: any IDGenerator

    /// Creates an engine with an id generator (`RandomIDGenerator` in production).
    public init(ids: any IDGenerator = RandomIDGenerator()) {
        self.ids = ids
    }

    // MARK: Loading

    // Every lookup checks the id's form first: an over-long or malformed id is
    // INVALID_ARGUMENT before the store is touched, and never quoted back whole.

    func requireSession(_ id: String, in repo: some SessionRepository) throws -> Session {
        try IdentifierRules.validateExternalID(id, what: "session id")
        guard let session = try repo.session(id: id) else {
            throw DomainError.notFound("session \(id) does not exist")
        }
        return session
    }

    func requireChannel(_ id: String, in repo: some SessionRepository) throws -> Channel {
        try IdentifierRules.validateResourceID(id, what: "channel id")
        guard let channel = try repo.channel(id: id) else {
            throw DomainError.notFound("channel \(id) does not exist")
        }
        return channel
    }

    func requireRep(_ id: String, in repo: some SessionRepository) throws -> Rep {
        try IdentifierRules.validateResourceID(id, what: "rep id")
        guard let rep = try repo.rep(id: id) else {
            throw DomainError.notFound("rep \(id) does not exist")
        }
        return rep
    }

    // MARK: Recording changes

    /// Stores a new session (version 1) and appends its creation event (`from: nil`).
    func insert(
        _ session: Session, reason: TransitionReason, actor: Actor,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws {
        var stored = session
        stored.version = 1
        try repo.insertSession(stored)
        changes.record(stored)
        let event = try repo.appendEvent(Event(
            sessionId: stored.id, time: stored.createdAt, actor: actor,
            from: nil, to: stored.status, repId: stored.repId, reason: reason
        ))
        changes.record(event)
    }

    /// Moves `session` to `status`, stores it and appends the event. Callers set the other fields first.
    ///
    /// - Parameter eventRepId: the rep to record on the event when it differs from the new owner
    ///   (the previous owner of a session that loses it).
    func transition(
        _ session: inout Session, to status: SessionStatus, reason: TransitionReason,
        actor: Actor, now: Timestamp, eventRepId: String? = nil,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws {
        let from = session.status
        session.status = status
        if status == .ended {
            session.endReason = reason
        }
        try save(&session, now: now, in: &repo, changes: &changes)
        let event = try repo.appendEvent(Event(
            sessionId: session.id, time: now, actor: actor,
            from: from, to: status, repId: eventRepId ?? session.repId, reason: reason
        ))
        changes.record(event)
    }

    /// Stores a change of `session` that is not a status transition (no event).
    func save(_ session: inout Session, now: Timestamp, in repo: inout some SessionRepository, changes: inout ChangeSet) throws {
        session.updatedAt = now
        session.version += 1
        try repo.updateSession(session)
        changes.record(session)
    }

    func save(_ rep: Rep, in repo: inout some SessionRepository, changes: inout ChangeSet) throws {
        try repo.upsertRep(rep)
        changes.record(rep)
    }

    // MARK: Capacity

    /// Makes `session` hold `weight` units on `rep` (the caller stores both and moves the status).
    func assign(_ session: inout Session, to rep: inout Rep, weight: Int, now: Timestamp) {
        session.repId = rep.id
        session.heldCapacity = weight
        session.queuedAt = nil
        session.inactivityDeadline = nil
        session.awaitingCustomerSince = nil
        session.autoEndDeadline = nil
        rep.usedCapacity += weight
        rep.idleSince = now
    }

    /// Clears everything that only exists while `ACTIVE` (countdown, held capacity) and gives the held
    /// capacity back to the owning rep, storing the rep. Returns whether capacity was freed.
    @discardableResult
    func leaveActive(_ session: inout Session, in repo: inout some SessionRepository, changes: inout ChangeSet) throws -> Bool {
        session.inactivityDeadline = nil
        session.awaitingCustomerSince = nil
        let held = session.heldCapacity
        session.heldCapacity = 0
        guard held > 0, let repId = session.repId, var rep = try repo.rep(id: repId) else {
            return false
        }
        rep.usedCapacity -= held
        try save(rep, in: &repo, changes: &changes)
        return true
    }

    // MARK: Paging

    func resolvePageSize(_ pageSize: Int) throws(DomainError) -> Int {
        if pageSize < 0 {
            throw .invalidArgument("page size \(pageSize) is negative; use 0 for the default of \(Self.defaultPageSize)")
        }
        return pageSize == 0 ? Self.defaultPageSize : min(pageSize, Self.maxPageSize)
    }

    func makePage<Item>(_ fetched: [Item], pageSize: Int, id: (Item) -> String) -> Page<Item> {
        if fetched.count > pageSize {
            let items = Array(fetched.prefix(pageSize))
            return Page(items: items, nextPageToken: items.last.map(id))
        }
        return Page(items: fetched, nextPageToken: nil)
    }
}
