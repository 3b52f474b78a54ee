public import SessionCore

extension SQLiteRepository {
    /// Appends `event`: its `sequence` is 1 + the session's last (gapless, as
    /// writes are serialized by `BEGIN IMMEDIATE`) and its `cursor` the next
    /// global AUTOINCREMENT value. Returns the stored event. `NOT_FOUND` if the
    /// session does not exist.
    public func appendEvent(_ event: Event) throws -> Event {
        let db = try writer("appendEvent")
        let assigned: (cursor: Int64, sequence: Int64)?
        do {
            // The MAX runs on the UNIQUE (session_id, sequence) index.
            assigned = try db.queryOne(
                """
                INSERT INTO events (session_id, sequence, time, actor_kind, actor_id, from_status, to_status, rep_id, reason)
                SELECT ?1, coalesce(max(sequence), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                FROM events WHERE session_id = ?1
                RETURNING cursor, sequence
                """,
                [
                    event.sessionId, event.time, event.actor.kind.rawValue, event.actor.id, event.from?.rawValue,
                    event.to.rawValue, event.repId, event.reason.rawValue,
                ]
            ) { (cursor: try $0.int64(0), sequence: try $0.int64(1)) }
        } catch let error as SQLiteError where error.constraint == .foreignKey {
            throw DomainError.notFound("session \(event.sessionId) does not exist")
        }
        guard let assigned else {
            throw SQLiteError(code: 1, message: "INSERT … RETURNING returned no row", sql: "INSERT INTO events")
        }
        var stored = event
        stored.cursor = assigned.cursor
        stored.sequence = assigned.sequence
        return stored
    }

    /// Up to `limit` events of `sessionId` with `sequence > afterSequence`, ordered by sequence.
    public func events(sessionId: String, afterSequence: Int64, limit: Int) throws -> [Event] {
        try reader("events(sessionId:afterSequence:limit:)").query(
            "SELECT \(Self.eventColumns) FROM events WHERE session_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            [sessionId, afterSequence, Self.limit(limit)], Self.decodeEvent)
    }

    /// Up to `limit` events of all sessions with `cursor > afterCursor`, ordered by cursor.
    public func events(afterCursor: Int64, limit: Int) throws -> [Event] {
        try reader("events(afterCursor:limit:)").query(
            "SELECT \(Self.eventColumns) FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?",
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
