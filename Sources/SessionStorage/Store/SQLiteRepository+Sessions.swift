public import SessionCore

extension SQLiteRepository {
    /// The session `id`, or `nil`.
    public func session(id: String) throws -> Session? {
        try reader("session(id:)").queryOne(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE id = ?", [id], Self.decodeSession)
    }

    /// The open (non-`ENDED`) session of `conversationId`, or `nil`.
    public func openSession(conversationId: String) throws -> Session? {
        try reader("openSession(conversationId:)").queryOne(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE conversation_id = ? AND status <> 'ENDED'",
            [conversationId], Self.decodeSession)
    }

    /// Stores a new session.
    ///
    /// `ALREADY_EXISTS` if the id is taken or the conversation already has an
    /// open session (the unique partial index `sessions_open_conversation`);
    /// `NOT_FOUND` if its channel or rep does not exist.
    public func insertSession(_ session: Session) throws {
        let db = try writer("insertSession")
        do {
            try db.run(
                """
                INSERT INTO sessions (\(Self.sessionColumns))
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                """,
                Self.sessionValues(session))
        } catch let error as SQLiteError {
            switch error.constraint {
            case .primaryKey:
                throw DomainError.alreadyExists("session \(session.id) already exists")
            default:
                throw try explain(error, writing: session)
            }
        }
    }

    /// Replaces a stored session if its stored version is `session.version - 1`.
    ///
    /// `NOT_FOUND` if it does not exist, `ABORTED` if the version does not
    /// follow the stored one (a concurrent change won), `INVALID_ARGUMENT` if
    /// it would move to another conversation, `ALREADY_EXISTS` if it would
    /// reopen a conversation that has another open session.
    public func updateSession(_ session: Session) throws {
        let db = try writer("updateSession")
        let changed: Int
        do {
            // One statement on the fast path; the WHERE clause carries the
            // optimistic-concurrency and same-conversation checks.
            changed = try db.run(
                """
                UPDATE sessions SET
                    channel_id = ?3, status = ?4, rep_id = ?5, created_at = ?6, updated_at = ?7, queued_at = ?8,
                    inactivity_deadline = ?9, auto_end_deadline = ?10, awaiting_customer_since = ?11,
                    held_capacity = ?12, end_reason = ?13, version = ?14
                WHERE id = ?1 AND conversation_id = ?2 AND version = ?14 - 1
                """,
                Self.sessionValues(session))
        } catch let error as SQLiteError {
            throw try explain(error, writing: session)
        }
        guard changed == 0 else { return }

        // Nothing matched: say why, in the reference repository's order.
        let stored = try db.queryOne("SELECT version, conversation_id FROM sessions WHERE id = ?", [session.id]) {
            (version: try $0.int64(0), conversationId: try $0.string(1))
        }
        guard let stored else {
            throw DomainError.notFound("session \(session.id) does not exist")
        }
        guard stored.version == session.version - 1 else {
            throw DomainError.aborted(
                "session \(session.id) was changed concurrently (stored version \(stored.version), update expected \(session.version - 1)); retry"
            )
        }
        throw DomainError.invalidArgument("session \(session.id) cannot move to another conversation")
    }

    /// Up to `limit` sessions matching `filter` with `id > after`, ordered by id.
    public func sessions(matching filter: SessionFilter, after: String?, limit: Int) throws -> [Session] {
        let db = try reader("sessions(matching:after:limit:)")
        // One statement per combination of filters (at most 32, each cached),
        // so that SQLite picks the right index for each.
        var conditions: [String] = []
        var arguments: [any SQLiteBindable] = []
        if let status = filter.status {
            conditions.append("status = ?")
            arguments.append(status.rawValue)
        }
        if let repId = filter.repId {
            conditions.append("rep_id = ?")
            arguments.append(repId)
        }
        if let channelId = filter.channelId {
            conditions.append("channel_id = ?")
            arguments.append(channelId)
        }
        if let conversationId = filter.conversationId {
            conditions.append("conversation_id = ?")
            arguments.append(conversationId)
        }
        if let after {
            conditions.append("id > ?")
            arguments.append(after)
        }
        arguments.append(Self.limit(limit))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        return try db.query(
            "SELECT \(Self.sessionColumns) FROM sessions \(whereClause)ORDER BY id LIMIT ?", arguments, Self.decodeSession)
    }

    /// Up to `limit` `WAITING` sessions strictly after `position`, in queue
    /// order `(queuedAt, id)` (index `sessions_waiting_queue`).
    public func waitingSessions(after position: QueuePosition?, limit: Int) throws -> [Session] {
        let db = try reader("waitingSessions(after:limit:)")
        if let position {
            return try db.query(
                Self.waitingAfterSQL, [position.queuedAt, position.sessionId, Self.limit(limit)], Self.decodeSession)
        }
        return try db.query(Self.waitingHeadSQL, [Self.limit(limit)], Self.decodeSession)
    }

    // The queue key falls back on updated_at exactly like the reference
    // repository, and matches the expression of the partial index.
    // INDEXED BY pins the plan: without statistics SQLite prefers
    // sessions_status and sorts the whole queue in a temporary B-tree.
    static let waitingHeadSQL = """
        SELECT \(sessionColumns) FROM sessions INDEXED BY sessions_waiting_queue
        WHERE status = 'WAITING'
        ORDER BY coalesce(queued_at, updated_at), id LIMIT ?
        """
    static let waitingAfterSQL = """
        SELECT \(sessionColumns) FROM sessions INDEXED BY sessions_waiting_queue
        WHERE status = 'WAITING' AND (coalesce(queued_at, updated_at), id) > (?, ?)
        ORDER BY coalesce(queued_at, updated_at), id LIMIT ?
        """

    /// Every session of rep `repId` in `status`, ordered by id.
    public func sessions(repId: String, status: SessionStatus) throws -> [Session] {
        try reader("sessions(repId:status:)").query(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE rep_id = ? AND status = ? ORDER BY id",
            [repId, status.rawValue], Self.decodeSession)
    }

    /// Up to `limit` sessions with an inactivity or auto-end deadline `<= now`,
    /// ordered by their earliest due deadline, then id.
    public func sessionsWithDueDeadline(at now: Timestamp, limit: Int) throws -> [Session] {
        try reader("sessionsWithDueDeadline(at:limit:)").query(
            Self.dueDeadlineSQL, [now, Self.limit(limit)], Self.decodeSession)
    }

    // The sort key is the earliest of the deadlines that are due (a NULL or
    // future one does not count), as in the reference repository.
    //
    // Each deadline index is read in order and stops after `limit` rows (SQLite
    // only sorts ties on the deadline by id): the first `limit` sessions by
    // (earliest due deadline, id) are among the first `limit` of one of the two
    // sides, so the union of both, merged per session (a session with both
    // deadlines due counts once, at the earlier), holds them all. A plain
    // `WHERE inactivity_deadline <= ?1 OR auto_end_deadline <= ?1 ORDER BY …`
    // reads and sorts every due session on each call: with 100,000 due, a
    // sweep of 256 per transaction became quadratic (~100 s instead of ~3 s).
    static let dueDeadlineSQL = """
        SELECT \(sessionColumns) FROM (
            SELECT * FROM (SELECT rowid AS due_row, inactivity_deadline AS due_at FROM sessions
                           WHERE inactivity_deadline <= ?1 ORDER BY inactivity_deadline, id LIMIT ?2)
            UNION ALL
            SELECT * FROM (SELECT rowid AS due_row, auto_end_deadline AS due_at FROM sessions
                           WHERE auto_end_deadline <= ?1 ORDER BY auto_end_deadline, id LIMIT ?2)
        ) AS due JOIN sessions ON sessions.rowid = due.due_row
        GROUP BY due.due_row
        ORDER BY min(due.due_at), id
        LIMIT ?2
        """

    // MARK: Helpers

    static func sessionValues(_ session: Session) -> [any SQLiteBindable] {
        [
            session.id, session.conversationId, session.channelId, session.status.rawValue, session.repId,
            session.createdAt, session.updatedAt, session.queuedAt, session.inactivityDeadline,
            session.autoEndDeadline, session.awaitingCustomerSince, session.heldCapacity,
            session.endReason?.rawValue, session.version,
        ]
    }

    /// ``sessionValues(_:)`` bound one value at a time, to parameters 1...14 (the materializer's
    /// rows: no array of existentials per row, text through the statement's row arena).
    static func bind(_ s: Session, to statement: SQLiteStatement) throws {
        try statement.bind(s.id, at: 1)
        try statement.bind(s.conversationId, at: 2)
        try statement.bind(s.channelId, at: 3)
        try statement.bind(s.status.rawValue, at: 4)
        try statement.bind(s.repId, at: 5)
        try statement.bind(s.createdAt.millisecondsSinceEpoch, at: 6)
        try statement.bind(s.updatedAt.millisecondsSinceEpoch, at: 7)
        try statement.bind(s.queuedAt?.millisecondsSinceEpoch, at: 8)
        try statement.bind(s.inactivityDeadline?.millisecondsSinceEpoch, at: 9)
        try statement.bind(s.autoEndDeadline?.millisecondsSinceEpoch, at: 10)
        try statement.bind(s.awaitingCustomerSince?.millisecondsSinceEpoch, at: 11)
        try statement.bind(Int64(s.heldCapacity), at: 12)
        try statement.bind(s.endReason?.rawValue, at: 13)
        try statement.bind(s.version, at: 14)
    }

    /// Turns a constraint violation while writing `session` into the domain error it means.
    private func explain(_ error: SQLiteError, writing session: Session) throws -> any Error {
        switch error.constraint {
        case .unique:
            // The only UNIQUE index on sessions besides the primary key.
            let open = try connection.queryOne(
                "SELECT id FROM sessions WHERE conversation_id = ? AND status <> 'ENDED' AND id <> ?",
                [session.conversationId, session.id]
            ) { try $0.string(0) }
            return DomainError.alreadyExists(
                "conversation \(session.conversationId) already has open session \(open ?? "(unknown)")")
        case .foreignKey:
            if try connection.queryOne("SELECT 1 FROM channels WHERE id = ?", [session.channelId], { _ in true }) == nil {
                return DomainError.notFound("channel \(session.channelId) does not exist")
            }
            if let repId = session.repId,
                try connection.queryOne("SELECT 1 FROM reps WHERE id = ?", [repId], { _ in true }) == nil
            {
                return DomainError.notFound("rep \(repId) does not exist")
            }
            return error
        default:
            return error
        }
    }
}
