public import SessionCore

/// The SQLite side of a partition: the tables of the schema are the journal. A batch is one
/// `BEGIN IMMEDIATE … COMMIT` on the writer connection holding only the rows that changed, so
/// `sqlite3` and backups see the same tables as before, and a crash leaves each batch whole or
/// absent (SQLite's WAL; fsynced at COMMIT under `--durability full`).
extension SQLiteStore: PartitionJournal {
    public func loadPartition() throws -> PartitionSnapshot {
        try read { (repo: SQLiteRepository) throws -> PartitionSnapshot in
            let db = repo.connection
            var snapshot = PartitionSnapshot()
            snapshot.channels = try db.query("SELECT \(SQLiteRepository.channelColumns) FROM channels", [], SQLiteRepository.decodeChannel)
            snapshot.reps = try db.query("SELECT \(SQLiteRepository.repColumns) FROM reps", [], SQLiteRepository.decodeRep)
            snapshot.openSessions = try db.query(
                "SELECT \(SQLiteRepository.sessionColumns) FROM sessions WHERE status IN ('NEW', 'WAITING', 'ACTIVE', 'INACTIVE')",
                [], SQLiteRepository.decodeSession)
            for (key, value) in try db.query("SELECT key, value FROM settings", [], { (try $0.string(0), try $0.int64(1)) }) {
                snapshot.settings[key] = value
            }
            // AUTOINCREMENT's counter never goes back, even if the newest events were deleted.
            snapshot.headCursor = try db.queryOne(
                """
                SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                           coalesce((SELECT max(cursor) FROM events), 0))
                """, [], { try $0.int64(0) }) ?? 0
            snapshot.messageFingerprints = try db.query("SELECT channel_id, message_id FROM messages", []) { row in
                MessageFingerprint.of(channelId: try row.string(0), messageId: try row.string(1))
            }
            return snapshot
        }
    }

    public func commit(_ batch: JournalBatch) throws {
        guard !batch.isEmpty else { return }
        try writerQueue.sync {
            try writer.execute("PRAGMA foreign_keys = OFF")
            defer { try? writer.execute("PRAGMA foreign_keys = ON") }
            try writer.transaction(.immediate) {
                let repo = SQLiteRepository(connection: writer, access: .readWrite)
                defer { repo.invalidate() }
                for channel in batch.channels {
                    try writer.run(
                        """
                        INSERT INTO channels (\(SQLiteRepository.channelColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET
                            type = excluded.type, capacity_model = excluded.capacity_model,
                            capacity_weight = excluded.capacity_weight,
                            customer_inactivity_timeout_ms = excluded.customer_inactivity_timeout_ms,
                            inactive_auto_end_after_ms = excluded.inactive_auto_end_after_ms,
                            inactivate_action_visible = excluded.inactivate_action_visible
                        """, SQLiteRepository.channelValues(channel))
                }
                for rep in batch.reps { try repo.upsertRep(rep) }
                try writer.runEach(
                    """
                    INSERT INTO sessions (\(SQLiteRepository.sessionColumns))
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    ON CONFLICT (id) DO UPDATE SET
                        channel_id = ?3, status = ?4, rep_id = ?5, created_at = ?6, updated_at = ?7, queued_at = ?8,
                        inactivity_deadline = ?9, auto_end_deadline = ?10, awaiting_customer_since = ?11,
                        held_capacity = ?12, end_reason = ?13, version = ?14
                    """, batch.sessions
                ) { statement, session in try SQLiteRepository.bind(session, to: statement) }
                try writer.runEach(
                    """
                    INSERT INTO events (cursor, session_id, sequence, time, actor_kind, actor_id, from_status, to_status, rep_id, reason)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, batch.events
                ) { (statement: SQLiteStatement, event: Event) in
                    try statement.bind(event.cursor, at: 1)
                    try statement.bind(event.sessionId, at: 2)
                    try statement.bind(event.sequence, at: 3)
                    try statement.bind(event.time.millisecondsSinceEpoch, at: 4)
                    try statement.bind(event.actor.kind.rawValue, at: 5)
                    try statement.bind(event.actor.id, at: 6)
                    try statement.bind(event.from?.rawValue, at: 7)
                    try statement.bind(event.to.rawValue, at: 8)
                    try statement.bind(event.repId, at: 9)
                    try statement.bind(event.reason.rawValue, at: 10)
                }
                try writer.runEach(
                    "INSERT INTO messages (\(SQLiteRepository.messageColumns)) VALUES (?, ?, ?, ?, ?, ?)", batch.messages
                ) { (statement: SQLiteStatement, m: Message) in
                    try statement.bind(m.messageId, at: 1)
                    try statement.bind(m.channelId, at: 2)
                    try statement.bind(m.sessionId, at: 3)
                    try statement.bind(m.sender.rawValue, at: 4)
                    try statement.bind(m.text, at: 5)
                    try statement.bind(m.time.millisecondsSinceEpoch, at: 6)
                }
                for (key, value) in batch.settings.sorted(by: { $0.key < $1.key }) { try repo.setSetting(key, value) }
            }
        }
    }

    public func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try read { (repo: SQLiteRepository) throws -> T in try body(repo) }
    }

    public func lastSequence(sessionId: String) throws -> Int64 {
        try read { (repo: SQLiteRepository) throws -> Int64 in
            try repo.connection.queryOne(
                "SELECT coalesce(max(sequence), 0) FROM events WHERE session_id = ?", [sessionId], { try $0.int64(0) }) ?? 0
        }
    }

    /// One statement whatever the count: the ids travel as one JSON array parameter.
    public func lastSequences(sessionIds: [String]) throws -> [String: Int64] {
        guard !sessionIds.isEmpty else { return [:] }
        var json = "["
        for (i, id) in sessionIds.enumerated() {
            if i > 0 { json += "," }
            json += "\""
            for ch in id.unicodeScalars {
                switch ch {
                case "\"", "\\": json += "\\"; json.unicodeScalars.append(ch)
                case _ where ch.value < 0x20:
                    let hex = String(ch.value, radix: 16)
                    json += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: json.unicodeScalars.append(ch)
                }
            }
            json += "\""
        }
        json += "]"
        return try read { (repo: SQLiteRepository) throws -> [String: Int64] in
            var out: [String: Int64] = [:]
            for (id, last) in try repo.connection.query(
                "SELECT session_id, max(sequence) FROM events WHERE session_id IN (SELECT value FROM json_each(?)) GROUP BY session_id",
                [json], { (try $0.string(0), try $0.int64(1)) }) {
                out[id] = last
            }
            return out
        }
    }
}
