public import SessionCore
internal import Foundation

extension PostgresRepository {
    /// The session `id`, or `nil`.
    public func session(id: String) throws -> Session? {
        try reader("session(id:)").queryOne(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE id = $1", [id], Self.decodeSession)
    }

    /// The open (non-`ENDED`) session of `conversationId`, or `nil`.
    public func openSession(conversationId: String) throws -> Session? {
        try reader("openSession(conversationId:)").queryOne(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE conversation_id = $1 AND status <> 'ENDED'",
            [conversationId], Self.decodeSession)
    }

    /// Stores a new session.
    ///
    /// `ALREADY_EXISTS` if the id is taken or the conversation already has an
    /// open session (the unique partial index `sessions_open_conversation`);
    /// `NOT_FOUND` if its channel or rep does not exist.
    public func insertSession(_ session: Session) throws {
        let db = try writer("insertSession")
        // The row goes in only if nothing refuses it; otherwise nothing is
        // written, no SQL error aborts the transaction, and `explainRefusal`
        // says why.
        let inserted = try db.run(
            """
            INSERT INTO sessions (\(Self.sessionColumns))
            SELECT \(Self.sessionParameters)
            WHERE EXISTS (SELECT 1 FROM channels WHERE id = $3::text)
              AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM reps WHERE id = $5::text))
            ON CONFLICT DO NOTHING
            """,
            Self.sessionValues(session))
        guard inserted == 0 else { return }
        if try db.queryOne("SELECT 1 FROM sessions WHERE id = $1", [session.id], { _ in true }) != nil {
            throw DomainError.alreadyExists("session \(session.id) already exists")
        }
        throw try explainRefusal(of: session, in: db)
    }

    /// Replaces a stored session if its stored version is `session.version - 1`.
    ///
    /// `NOT_FOUND` if it does not exist, `ABORTED` if the version does not
    /// follow the stored one (a concurrent change won), `INVALID_ARGUMENT` if
    /// it would move to another conversation, `ALREADY_EXISTS` if it would
    /// reopen a conversation that has another open session.
    public func updateSession(_ session: Session) throws {
        let db = try writer("updateSession")
        // One statement on the fast path; the WHERE clause carries the
        // optimistic-concurrency, same-conversation and constraint checks.
        let changed = try db.run(
            """
            UPDATE sessions SET
                channel_id = $3::text, status = $4::text, rep_id = $5::text, created_at = $6::bigint,
                updated_at = $7::bigint, queued_at = $8::bigint, inactivity_deadline = $9::bigint,
                auto_end_deadline = $10::bigint, awaiting_customer_since = $11::bigint,
                held_capacity = $12::bigint, end_reason = $13::text, version = $14::bigint
            WHERE id = $1::text AND conversation_id = $2::text AND version = $14::bigint - 1
              AND EXISTS (SELECT 1 FROM channels WHERE id = $3::text)
              AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM reps WHERE id = $5::text))
              AND ($4::text = 'ENDED' OR NOT EXISTS (
                  SELECT 1 FROM sessions other
                  WHERE other.conversation_id = $2::text AND other.status <> 'ENDED' AND other.id <> $1::text))
            """,
            Self.sessionValues(session))
        guard changed == 0 else { return }

        // Nothing matched: say why, in the reference repository's order.
        let stored = try db.queryOne("SELECT version, conversation_id FROM sessions WHERE id = $1", [session.id]) {
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
        guard stored.conversationId == session.conversationId else {
            throw DomainError.invalidArgument("session \(session.id) cannot move to another conversation")
        }
        throw try explainRefusal(of: session, in: db)
    }

    /// Up to `limit` sessions matching `filter` with `id > after`, ordered by id.
    public func sessions(matching filter: SessionFilter, after: String?, limit: Int) throws -> [Session] {
        let db = try reader("sessions(matching:after:limit:)")
        // One statement per combination of filters (at most 32, each prepared
        // once per connection), so that the planner picks the right index for each.
        var conditions: [String] = []
        var arguments: [any PostgresBindable] = []
        func add(_ column: String, _ value: String) {
            arguments.append(value)
            conditions.append("\(column) $\(arguments.count)")
        }
        if let status = filter.status { add("status =", status.rawValue) }
        if let repId = filter.repId { add("rep_id =", repId) }
        if let channelId = filter.channelId { add("channel_id =", channelId) }
        if let conversationId = filter.conversationId { add("conversation_id =", conversationId) }
        if let after { add("id >", after) }
        arguments.append(Self.limit(limit))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        return try db.query(
            "SELECT \(Self.sessionColumns) FROM sessions \(whereClause)ORDER BY id LIMIT $\(arguments.count)",
            arguments, Self.decodeSession)
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
    static let waitingHeadSQL = """
        SELECT \(sessionColumns) FROM sessions
        WHERE status = 'WAITING'
        ORDER BY coalesce(queued_at, updated_at), id LIMIT $1
        """
    static let waitingAfterSQL = """
        SELECT \(sessionColumns) FROM sessions
        WHERE status = 'WAITING' AND (coalesce(queued_at, updated_at), id) > ($1::bigint, $2::text)
        ORDER BY coalesce(queued_at, updated_at), id LIMIT $3
        """

    /// Every session of rep `repId` in `status`, ordered by id.
    public func sessions(repId: String, status: SessionStatus) throws -> [Session] {
        try reader("sessions(repId:status:)").query(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE rep_id = $1 AND status = $2 ORDER BY id",
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
    // Each side reads its partial (deadline, id) index in order and stops
    // after `limit` rows. The first `limit` sessions by (earliest due
    // deadline, id) are among the first `limit` of the side holding their
    // earliest deadline (every session before one on that side also comes
    // before it overall), so the union of both sides, taking each session at
    // its smaller candidate deadline, holds them all with their right key. A
    // plain `WHERE inactivity_deadline <= $1 OR auto_end_deadline <= $1 ORDER
    // BY least(...)` would read and sort every due session on each call:
    // quadratic for a sweeper working through 100,000 due timers in batches.
    static let dueDeadlineSQL = """
        SELECT \(qualifiedSessionColumns) FROM sessions
        JOIN (
            SELECT id AS due_id, min(due_at) AS due_at FROM (
                (SELECT id, inactivity_deadline AS due_at FROM sessions
                 WHERE inactivity_deadline <= $1::bigint ORDER BY inactivity_deadline, id LIMIT $2)
                UNION ALL
                (SELECT id, auto_end_deadline AS due_at FROM sessions
                 WHERE auto_end_deadline <= $1::bigint ORDER BY auto_end_deadline, id LIMIT $2)
            ) AS candidates
            GROUP BY id
        ) AS due ON sessions.id = due.due_id
        ORDER BY due.due_at, sessions.id
        LIMIT $2
        """

    /// The session columns prefixed with `sessions.`, for joins.
    static let qualifiedSessionColumns = sessionColumns
        .split(separator: ",")
        .map { "sessions." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .joined(separator: ", ")

    // MARK: Helpers

    /// `$1::text, ..., $14::bigint`: the session columns as typed parameters.
    static let sessionParameters = """
        $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, $8::bigint,
        $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::text, $14::bigint
        """

    private static func sessionValues(_ session: Session) -> [any PostgresBindable] {
        [
            session.id, session.conversationId, session.channelId, session.status.rawValue, session.repId,
            session.createdAt, session.updatedAt, session.queuedAt, session.inactivityDeadline,
            session.autoEndDeadline, session.awaitingCustomerSince, session.heldCapacity,
            session.endReason?.rawValue, session.version,
        ]
    }

    /// Why `session` could not be written, once id and version are known to be
    /// fine: another open session of its conversation, or a missing channel or rep.
    private func explainRefusal(of session: Session, in db: PostgresConnection) throws -> any Error {
        if session.status.isOpen,
            let open = try db.queryOne(
                "SELECT id FROM sessions WHERE conversation_id = $1 AND status <> 'ENDED' AND id <> $2",
                [session.conversationId, session.id], { try $0.string(0) })
        {
            return DomainError.alreadyExists("conversation \(session.conversationId) already has open session \(open)")
        }
        if try db.queryOne("SELECT 1 FROM channels WHERE id = $1", [session.channelId], { _ in true }) == nil {
            return DomainError.notFound("channel \(session.channelId) does not exist")
        }
        if let repId = session.repId,
            try db.queryOne("SELECT 1 FROM reps WHERE id = $1", [repId], { _ in true }) == nil
        {
            return DomainError.notFound("rep \(repId) does not exist")
        }
        return PostgresError(
            sqlState: nil, message: "session \(session.id) was neither written nor refused for a known reason",
            sql: "INSERT/UPDATE sessions")
    }
}
