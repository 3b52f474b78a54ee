public import SessionCore

extension PostgresRepository {
    /// Appends `event`: its `sequence` is 1 + the session's last and its
    /// `cursor` 1 + the largest cursor, both read under the store's write lock,
    /// so they are gapless and in commit order. Returns the stored event.
    /// `NOT_FOUND` if the session does not exist.
    public func appendEvent(_ event: Event) throws -> Event {
        let db = try writer("appendEvent")
        // Both MAXes run on an index: the primary key and UNIQUE (session_id, sequence).
        let assigned = try db.queryOne(
            """
            INSERT INTO events (cursor, session_id, sequence, "time", actor_kind, actor_id, from_status, to_status, rep_id, reason)
            SELECT (SELECT coalesce(max(cursor), 0) + 1 FROM events),
                   $1::text,
                   (SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE session_id = $1::text),
                   $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text
            WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1::text)
            RETURNING cursor, sequence
            """,
            [
                event.sessionId, event.time, event.actor.kind.rawValue, event.actor.id, event.from?.rawValue,
                event.to.rawValue, event.repId, event.reason.rawValue,
            ]
        ) { (cursor: try $0.int64(0), sequence: try $0.int64(1)) }
        guard let assigned else {
            throw DomainError.notFound("session \(event.sessionId) does not exist")
        }
        var stored = event
        stored.cursor = assigned.cursor
        stored.sequence = assigned.sequence
        return stored
    }

    /// Up to `limit` events of `sessionId` with `sequence > afterSequence`, ordered by sequence.
    public func events(sessionId: String, afterSequence: Int64, limit: Int) throws -> [Event] {
        try reader("events(sessionId:afterSequence:limit:)").query(
            "SELECT \(Self.eventColumns) FROM events WHERE session_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            [sessionId, afterSequence, Self.limit(limit)], Self.decodeEvent)
    }

    /// Up to `limit` events of all sessions with `cursor > afterCursor`, ordered by cursor.
    public func events(afterCursor: Int64, limit: Int) throws -> [Event] {
        try reader("events(afterCursor:limit:)").query(
            "SELECT \(Self.eventColumns) FROM events WHERE cursor > $1 ORDER BY cursor LIMIT $2",
            [afterCursor, Self.limit(limit)], Self.decodeEvent)
    }

    /// The cursor of the newest event, or 0 when there is none: where a new
    /// watcher that wants only future events starts.
    public func latestEventCursor() throws -> Int64 {
        try reader("latestEventCursor()").queryOne("SELECT coalesce(max(cursor), 0) FROM events") {
            try $0.int64(0)
        } ?? 0
    }
}
