public import SessionCore

extension SQLiteRepository {
    /// Appends `event`: its `sequence` is 1 + the session's last (gapless, as
    /// writes are serialized by `BEGIN IMMEDIATE`) and its `cursor` the next
    /// global AUTOINCREMENT value. Returns the stored event. `NOT_FOUND` if the
    /// session does not exist.
    public func appendEvent(_ event: Event) throws -> Event {
        let db = try writer("appendEvent")
        // Two statements rather than one INSERT … SELECT … RETURNING: RETURNING
        // buffers its rows in a temporary table, whose pager is created and
        // freed on every call (measurable on the write path: the allocator
        // returns that memory to the kernel each time and faults it back in).
        // Writes are serialized, so the sequence read here is still the next one.
        // The MAX runs on the UNIQUE (session_id, sequence) index.
        let sequence = try db.queryOne(
            "SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE session_id = ?", [event.sessionId]
        ) { try $0.int64(0) } ?? 1
        do {
            try db.run(
                """
                INSERT INTO events (session_id, sequence, time, actor_kind, actor_id, from_status, to_status, rep_id, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    event.sessionId, sequence, event.time, event.actor.kind.rawValue, event.actor.id, event.from?.rawValue,
                    event.to.rawValue, event.repId, event.reason.rawValue,
                ])
        } catch let error as SQLiteError where error.constraint == .foreignKey {
            throw DomainError.notFound("session \(event.sessionId) does not exist")
        }
        var stored = event
        stored.cursor = db.lastInsertRowID
        stored.sequence = sequence
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
