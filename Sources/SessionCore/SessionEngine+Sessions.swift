/// Session operations: creation, messages, Customer Inactive, End Chat, business-initiated sessions, reads.
extension SessionEngine {
    // MARK: Creating

    /// Opens a `WAITING` session for a conversation and routes it (service or admin).
    ///
    /// Idempotent per conversation: if the conversation already has an open session on the same
    /// channel, that session is returned unchanged (`isDuplicate`); on another channel the call is
    /// FAILED_PRECONDITION. A `firstMessage` is recorded for idempotency only when a session is created;
    /// deliver messages to existing sessions with `postCustomerMessage`.
    public mutating func createSession(
        conversationId: String, channelId: String, firstMessage: IncomingMessage? = nil,
        by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        try requireCustomerSide(actor, to: "create sessions")
        try IdentifierRules.validateExternalID(conversationId, what: "conversation id")
        try IdentifierRules.validateResourceID(channelId, what: "channel id")
        if let firstMessage {
            try validate(firstMessage)
            if let retried = try acceptedCustomerMessage(firstMessage, conversationId: conversationId, channelId: channelId, in: repo) {
                return SessionOutcome(session: retried, changes: ChangeSet(), isDuplicate: true)
            }
        }
        let channel = try requireChannel(channelId, in: repo)
        if let open = try repo.openSession(conversationId: conversationId) {
            try requireSameChannel(open, channelId: channelId)
            return SessionOutcome(session: open, changes: ChangeSet(), isDuplicate: true)
        }
        var changes = ChangeSet()
        let session = try openSession(conversationId: conversationId, on: channel, reason: .created,
                                      actor: actor, now: now, in: &repo, changes: &changes)
        if let firstMessage {
            try repo.insertMessage(Message(messageId: firstMessage.messageId, channelId: channel.id, sessionId: session.id,
                                           sender: .customer, text: firstMessage.text, time: now))
        }
        try route(now: now, in: &repo, changes: &changes)
        return SessionOutcome(session: try requireSession(session.id, in: repo), changes: changes)
    }

    /// Starts a business-initiated session: `NEW`, owned by `repId`, using no capacity, until the
    /// customer replies (by that rep itself, a service or an admin).
    ///
    /// The rep must hold the channel's permissions (PERMISSION_DENIED naming the missing ones) whoever
    /// starts it, since it will have to write on it. If the conversation already has an open session
    /// the call is FAILED_PRECONDITION naming that session's status (not ALREADY_EXISTS: nothing with the
    /// caller's identity exists; the conversation is in the wrong state for this operation).
    public mutating func startBusinessInitiated(
        repId: String, conversationId: String, channelId: String,
        by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        if actor.kind == .rep && actor.id != repId {
            throw DomainError.permissionDenied(
                "rep \(actor.id) may not start a session for rep \(repId); a rep may only start sessions for itself"
            )
        }
        try IdentifierRules.validateResourceID(repId, what: "rep id")
        try IdentifierRules.validateExternalID(conversationId, what: "conversation id")
        try IdentifierRules.validateResourceID(channelId, what: "channel id")
        let channel = try requireChannel(channelId, in: repo)
        let rep = try requireRep(repId, in: repo)
        try requirePermissions(of: rep, on: channel)
        if let open = try repo.openSession(conversationId: conversationId) {
            throw DomainError.failedPrecondition(
                "conversation \(conversationId) already has open session \(open.id), which is \(open.status.rawValue); a business-initiated session can only start when the conversation has no open session"
            )
        }
        var changes = ChangeSet()
        let session = Session(
            id: ids.makeSessionID(at: now), conversationId: conversationId, channelId: channelId,
            status: .new, repId: repId, createdAt: now, updatedAt: now
        )
        try insert(session, reason: .businessInitiated, actor: actor, in: &repo, changes: &changes)
        return SessionOutcome(session: try requireSession(session.id, in: repo), changes: changes)
    }

    // MARK: Messages

    /// Accepts a customer message (service or admin). Idempotent per message id: a retry returns the
    /// session it went to, changes nothing (`isDuplicate`); a reused id with other content is ALREADY_EXISTS.
    ///
    /// - No open session (none yet, or the last one `ENDED`): a new `WAITING` session, routed.
    /// - `NEW`: `ACTIVE` with the owning rep if it is `AVAILABLE`, holds the channel's permissions and
    ///   has free capacity ≥ the weight; otherwise `WAITING` and routed.
    /// - `WAITING`: stays queued.
    /// - `ACTIVE`: stops the customer inactivity countdown.
    /// - `INACTIVE`: clears the auto-end deadline; `TAB_BASED` → `WAITING` and routed; `STATUS_BASED` →
    ///   `ACTIVE` with the same rep even over capacity, unless that rep is `OFFLINE` (or has lost the
    ///   channel's permissions), then routed like tab-based.
    public mutating func postCustomerMessage(
        _ message: IncomingMessage, to target: CustomerMessageTarget,
        by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        try requireCustomerSide(actor, to: "post customer messages")
        try validate(message)
        let conversationId: String
        let channelId: String
        var current: Session?
        switch target {
        case let .conversation(id, channel):
            try IdentifierRules.validateExternalID(id, what: "conversation id")
            conversationId = id
            current = try repo.openSession(conversationId: id)
            if !channel.isEmpty {
                try IdentifierRules.validateResourceID(channel, what: "channel id")
                channelId = channel
            } else if let open = current {
                // The channel is needed only to open a session.
                channelId = open.channelId
            } else if let lastChannel = try repo.sessions(matching: SessionFilter(conversationId: id), after: nil, limit: 1_000).last?.channelId,
                      let retried = try acceptedCustomerMessage(message, conversationId: id, channelId: lastChannel, in: repo) {
                // A retry after its session ended: the conversation's last channel holds the message id.
                channelId = retried.channelId
            } else {
                throw DomainError.invalidArgument("conversation \(id) has no open session; a channel id is needed to open one")
            }
        case let .session(id):
            try IdentifierRules.validateExternalID(id, what: "session id")
            let session = try requireSession(id, in: repo)
            conversationId = session.conversationId
            channelId = session.channelId
            current = session.status.isOpen ? session : try repo.openSession(conversationId: conversationId)
        }
        if let retried = try acceptedCustomerMessage(message, conversationId: conversationId, channelId: channelId, in: repo) {
            return SessionOutcome(session: retried, changes: ChangeSet(), isDuplicate: true)
        }
        if let current {
            try requireSameChannel(current, channelId: channelId)
        }
        let channel = try requireChannel(channelId, in: repo)

        var changes = ChangeSet()
        var session: Session
        if var open = current {
            switch open.status {
            case .new:
                try customerAnswers(&open, on: channel, actor: actor, now: now, in: &repo, changes: &changes)
            case .active:
                if open.inactivityDeadline != nil || open.awaitingCustomerSince != nil {
                    open.inactivityDeadline = nil
                    open.awaitingCustomerSince = nil
                    try save(&open, now: now, in: &repo, changes: &changes)
                }
            case .inactive:
                try customerReturns(&open, on: channel, actor: actor, now: now, in: &repo, changes: &changes)
            case .waiting, .ended:
                break
            }
            session = open
        } else {
            session = try openSession(conversationId: conversationId, on: channel, reason: .customerMessage,
                                      actor: actor, now: now, in: &repo, changes: &changes)
        }
        try repo.insertMessage(Message(messageId: message.messageId, channelId: channel.id, sessionId: session.id,
                                       sender: .customer, text: message.text, time: now))
        if session.status == .waiting {
            try route(now: now, in: &repo, changes: &changes)
            session = try requireSession(session.id, in: repo)
        }
        return SessionOutcome(session: session, changes: changes)
    }

    /// Accepts a rep's message on an `ACTIVE` session, or a `NEW` one (business-initiated follow-ups),
    /// by the owning rep (holding the channel's permissions) or an admin. Idempotent per message id.
    ///
    /// On `ACTIVE`, the first rep message after the customer's last one starts the customer inactivity
    /// countdown when the channel configures one; later rep messages do not restart it.
    public func postRepMessage(
        _ message: IncomingMessage, sessionId: String,
        by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        try validate(message)
        var session = try requireSession(sessionId, in: repo)
        try authorize(actor, on: session, to: "send messages on session \(sessionId)", serviceAllowed: false)
        let channel = try requireChannel(session.channelId, in: repo)
        try requireChannelPermissions(of: actor, on: channel, in: repo)
        if let stored = try repo.message(channelId: channel.id, id: message.messageId) {
            guard stored.sender == .rep, stored.sessionId == sessionId, stored.text == message.text else {
                throw DomainError.alreadyExists("message id \(message.messageId) was already used for a different message")
            }
            return SessionOutcome(session: session, changes: ChangeSet(), isDuplicate: true)
        }
        guard session.status == .active || session.status == .new else {
            throw DomainError.failedPrecondition(
                "session \(sessionId) is \(session.status.rawValue); a rep can only send messages on an ACTIVE or NEW session"
            )
        }
        var changes = ChangeSet()
        if session.status == .active && session.awaitingCustomerSince == nil {
            session.awaitingCustomerSince = now
            if let timeout = channel.customerInactivityTimeout,
               channel.family.supportsCustomerInactivityTimeout,
               session.inactivityDeadline == nil {
                session.inactivityDeadline = now + timeout
            }
            try save(&session, now: now, in: &repo, changes: &changes)
        }
        try repo.insertMessage(Message(messageId: message.messageId, channelId: channel.id, sessionId: sessionId,
                                       sender: .rep, text: message.text, time: now))
        return SessionOutcome(session: session, changes: changes)
    }

    // MARK: Customer Inactive and End Chat

    /// "Customer Inactive": the owning rep (holding the channel's permissions) or an admin marks an
    /// `ACTIVE` session `INACTIVE`. Its capacity frees at once, it will end by itself after the
    /// channel's `inactiveAutoEndAfter`, and routing runs.
    ///
    /// Checked in this order: authorization (PERMISSION_DENIED for anyone else, whatever the status),
    /// the rep's channel permissions, standard channel (FAILED_PRECONDITION naming the type), hidden
    /// action (FAILED_PRECONDITION), status `ACTIVE` (FAILED_PRECONDITION naming the status).
    public func markInactive(
        sessionId: String, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        var session = try requireSession(sessionId, in: repo)
        try authorize(actor, on: session, to: "mark session \(sessionId) inactive", serviceAllowed: false)
        let channel = try requireChannel(session.channelId, in: repo)
        try requireChannelPermissions(of: actor, on: channel, in: repo)
        guard channel.family.supportsInactiveStatus else {
            throw DomainError.failedPrecondition(
                "channel \(channel.id) is \(channel.type.rawValue); standard channels do not support the Inactive status"
            )
        }
        guard channel.inactivateActionVisible else {
            throw DomainError.failedPrecondition(
                "the Customer Inactive action is hidden on channel \(channel.id); an admin must make it visible before sessions can be marked inactive"
            )
        }
        guard session.status == .active else {
            throw DomainError.failedPrecondition(
                "session \(sessionId) is \(session.status.rawValue); only an ACTIVE session can be marked inactive"
            )
        }
        var changes = ChangeSet()
        try leaveActive(&session, in: &repo, changes: &changes)
        session.autoEndDeadline = now + channel.inactiveAutoEndAfter
        try transition(&session, to: .inactive, reason: .markedInactive, actor: actor, now: now, in: &repo, changes: &changes)
        try route(now: now, in: &repo, changes: &changes)
        return SessionOutcome(session: try requireSession(sessionId, in: repo), changes: changes)
    }

    /// "End Chat": ends a session in any open status — by the owning rep (holding the channel's
    /// permissions), an admin, or a service on the customer's behalf. The reason follows the actor
    /// (`ENDED_BY_REP`, `ENDED_BY_ADMIN`, `ENDED_BY_CUSTOMER`, `ENDED_BY_SYSTEM`). Capacity held by an
    /// `ACTIVE` session frees and routing runs. The last owner stays recorded in `repId`.
    public func endSession(
        sessionId: String, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> SessionOutcome {
        var session = try requireSession(sessionId, in: repo)
        try authorize(actor, on: session, to: "end session \(sessionId)", serviceAllowed: true)
        let channel = try requireChannel(session.channelId, in: repo)
        try requireChannelPermissions(of: actor, on: channel, in: repo)
        guard session.status.isOpen else {
            throw DomainError.failedPrecondition("session \(sessionId) is ENDED; it cannot be ended again")
        }
        let reason: TransitionReason
        switch actor.kind {
        case .rep: reason = .endedByRep
        case .admin: reason = .endedByAdmin
        case .service: reason = .endedByCustomer
        case .system: reason = .endedBySystem
        }
        var changes = ChangeSet()
        let freed = try leaveActive(&session, in: &repo, changes: &changes)
        session.queuedAt = nil
        session.autoEndDeadline = nil
        try transition(&session, to: .ended, reason: reason, actor: actor, now: now, in: &repo, changes: &changes)
        if freed {
            try route(now: now, in: &repo, changes: &changes)
        }
        return SessionOutcome(session: try requireSession(sessionId, in: repo), changes: changes)
    }

    // MARK: Reads

    /// The session `id` (admins and services any session, a rep only its own).
    public func getSession(_ id: String, by actor: Actor, in repo: some SessionRepository) throws -> Session {
        let session = try requireSession(id, in: repo)
        try authorize(actor, on: session, to: "read session \(id)", serviceAllowed: true)
        return session
    }

    /// Sessions matching `filter`, ordered by id, one page at a time. A rep sees only its own sessions:
    /// its filter's `repId` defaults to itself, and naming another rep is PERMISSION_DENIED.
    public func listSessions(
        _ filter: SessionFilter = SessionFilter(), pageSize: Int = 0, pageToken: String? = nil,
        by actor: Actor, in repo: some SessionRepository
    ) throws -> Page<Session> {
        try filter.validate()
        try IdentifierRules.validatePageToken(pageToken)
        var filter = filter
        if actor.kind == .rep {
            if let repId = filter.repId, repId != actor.id {
                throw DomainError.permissionDenied("rep \(actor.id) may not list the sessions of rep \(repId); a rep may only list its own")
            }
            filter.repId = actor.id
        }
        let size = try resolvePageSize(pageSize)
        return makePage(try repo.sessions(matching: filter, after: pageToken, limit: size + 1), pageSize: size, id: \.id)
    }

    /// The events of one session with `sequence > afterSequence`, in order (admins and services any
    /// session, a rep only its own). Page by passing the last sequence seen.
    public func listEvents(
        sessionId: String, afterSequence: Int64 = 0, pageSize: Int = 0,
        by actor: Actor, in repo: some SessionRepository
    ) throws -> [Event] {
        let session = try requireSession(sessionId, in: repo)
        try authorize(actor, on: session, to: "read the events of session \(sessionId)", serviceAllowed: true)
        return try repo.events(sessionId: sessionId, afterSequence: afterSequence, limit: try resolvePageSize(pageSize))
    }

    /// Events of all sessions with `cursor > afterCursor`, in cursor order: the feed behind the watch
    /// stream (admins and services only). A consumer that reconnects with its last cursor misses nothing.
    public func events(
        afterCursor: Int64, pageSize: Int = 0, by actor: Actor, in repo: some SessionRepository
    ) throws -> [Event] {
        try requireEventFeedReader(actor)
        return try repo.events(afterCursor: afterCursor, limit: try resolvePageSize(pageSize))
    }

    /// The cursor of the newest event of all sessions (0 when the log is empty): a watch after it
    /// shows only what happens from then on (admins and services only).
    public func eventHead(by actor: Actor, in repo: some SessionRepository) throws -> Int64 {
        try requireEventFeedReader(actor)
        return try repo.latestEventCursor()
    }

    /// Refuses callers that may not read the event feed of all sessions (reps read only their own).
    public func requireEventFeedReader(_ actor: Actor) throws(DomainError) {
        try requireReader(actor, ofRep: nil, to: "watch all session events")
    }

    // MARK: Helpers

    func validate(_ message: IncomingMessage) throws(DomainError) {
        try IdentifierRules.validateExternalID(message.messageId, what: "message id")
        try IdentifierRules.validateMessageText(message.text)
    }

    func requireSameChannel(_ open: Session, channelId: String) throws(DomainError) {
        guard open.channelId == channelId else {
            throw .failedPrecondition(
                "conversation \(open.conversationId) has open session \(open.id) on channel \(open.channelId), not on channel \(channelId)"
            )
        }
    }

    /// The session a customer message with this id already went to, if it was accepted before;
    /// ALREADY_EXISTS if the id was used for something else.
    func acceptedCustomerMessage(
        _ message: IncomingMessage, conversationId: String, channelId: String, in repo: some SessionRepository
    ) throws -> Session? {
        guard let stored = try repo.message(channelId: channelId, id: message.messageId) else { return nil }
        let session = try repo.session(id: stored.sessionId)
        guard stored.sender == .customer, stored.text == message.text, let session, session.conversationId == conversationId else {
            throw DomainError.alreadyExists("message id \(message.messageId) was already used for a different message")
        }
        return session
    }

    /// Creates a new `WAITING` session for the conversation (the caller routes).
    mutating func openSession(
        conversationId: String, on channel: Channel, reason: TransitionReason, actor: Actor, now: Timestamp,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws -> Session {
        let session = Session(
            id: ids.makeSessionID(at: now), conversationId: conversationId, channelId: channel.id,
            status: .waiting, createdAt: now, updatedAt: now, queuedAt: now
        )
        try insert(session, reason: reason, actor: actor, in: &repo, changes: &changes)
        return session
    }

    /// The customer's first reply to a `NEW` session.
    func customerAnswers(
        _ session: inout Session, on channel: Channel, actor: Actor, now: Timestamp,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws {
        if let repId = session.repId, var rep = try repo.rep(id: repId),
           rep.presence == .available,
           rep.freeCapacity >= channel.capacityWeight,
           rep.missingPermissions(for: channel.family).isEmpty {
            assign(&session, to: &rep, weight: channel.capacityWeight, now: now)
            try save(rep, in: &repo, changes: &changes)
            try transition(&session, to: .active, reason: .customerMessage, actor: actor, now: now, in: &repo, changes: &changes)
        } else {
            try requeue(&session, reason: .customerMessage, actor: actor, now: now, in: &repo, changes: &changes)
        }
    }

    /// The customer writes on an `INACTIVE` session.
    func customerReturns(
        _ session: inout Session, on channel: Channel, actor: Actor, now: Timestamp,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws {
        session.autoEndDeadline = nil
        if channel.capacityModel == .statusBased, let repId = session.repId, var rep = try repo.rep(id: repId),
           rep.presence != .offline,
           rep.missingPermissions(for: channel.family).isEmpty {
            // Status-based: the same rep continues, even if this takes it over capacity.
            assign(&session, to: &rep, weight: channel.capacityWeight, now: now)
            try save(rep, in: &repo, changes: &changes)
            try transition(&session, to: .active, reason: .customerReturned, actor: actor, now: now, in: &repo, changes: &changes)
        } else {
            try requeue(&session, reason: .customerReturned, actor: actor, now: now, in: &repo, changes: &changes)
        }
    }

    /// Puts a session that holds no capacity back in the queue (the caller routes).
    func requeue(
        _ session: inout Session, reason: TransitionReason, actor: Actor, now: Timestamp,
        in repo: inout some SessionRepository, changes: inout ChangeSet
    ) throws {
        let previousOwner = session.repId
        session.repId = nil
        session.queuedAt = now
        session.autoEndDeadline = nil
        session.inactivityDeadline = nil
        session.awaitingCustomerSince = nil
        try transition(&session, to: .waiting, reason: reason, actor: actor, now: now,
                       eventRepId: previousOwner, in: &repo, changes: &changes)
    }
}
