import PostgresTestSupport
import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// What only the PostgreSQL store has: its connection URL, migrations under
/// the write lock, session settings, parameter binding, the query plans.
@Suite struct PostgresStoreTests {
    @Test func opensWithTheLatestSchemaAndItsSessionSettings() throws {
        let url = try PostgresTestServer.makeDatabase()
        let store = try PostgresStore(url: url, options: .forTests)
        #expect(try store.schemaVersion() == PostgresStore.latestSchemaVersion)
        #expect(PostgresStore.latestSchemaVersion == SQLiteStore.latestSchemaVersion)
        #expect(PostgresSchema.migrations.map(\.version) == SessionSchema.migrations.map(\.version))
        #expect(store.database.hasPrefix("postgres://postgres@127.0.0.1:") && store.database.hasSuffix(url.split(separator: "/").last.map(String.init) ?? "?"))
        try store.write { repo throws in
            func show(_ name: String) throws -> String? {
                try repo.connection.queryOne("SELECT current_setting($1)", [name]) { try $0.string(0) }
            }
            #expect(try show("synchronous_commit") == "on")
            #expect(try show("lock_timeout") == "20s")
            #expect(try show("transaction_isolation") == "read committed")
            #expect(try show("client_encoding") == "UTF8")
            // The write lock is held by this transaction.
            let held = try repo.connection.queryOne(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted", []
            ) { try $0.int(0) }
            #expect(held == 1)
        }
        try store.read { repo throws in
            #expect(try repo.connection.queryOne("SELECT current_setting('transaction_isolation')") { try $0.string(0) }
                == "repeatable read")
            #expect(try repo.connection.queryOne("SELECT current_setting('transaction_read_only')") { try $0.string(0) } == "on")
        }
    }

    @Test func instancesStartingTogetherMigrateOnce() throws {
        let url = try PostgresTestServer.makeDatabase()
        let failures = Failures()
        runOnThreads(4) { _ in
            do {
                let store = try PostgresStore(url: url, options: .forTests)
                try store.write { _ = try $0.channels(after: nil, limit: 1) }
            } catch {
                failures.add("\(error)")
            }
        }
        #expect(failures.all == [])
        let store = try PostgresStore(url: url, options: .forTests)
        let recorded = try store.read { repo throws in
            try repo.connection.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version") {
                (try $0.int(0), try $0.string(1), try $0.int64(2))
            }
        }
        #expect(recorded.map(\.0) == PostgresSchema.migrations.map(\.version))
        #expect(recorded.map(\.1) == PostgresSchema.migrations.map(\.name))
        // applied_at is Unix milliseconds: after 2020, before 2200.
        #expect(recorded.allSatisfy { $0.2 > 1_577_836_800_000 && $0.2 < 7_258_118_400_000 })
    }

    /// Version 2 scopes message ids per channel: a database written by version 1 keeps every message,
    /// each under the channel of its session, and the new key still refuses a repeat on one channel.
    @Test func messagesWrittenBeforeMigration2StayValid() throws {
        let url = try PostgresTestServer.makeDatabase()
        do {
            let connection = try PostgresConnection(configuration: .init(url: url))
            try PostgresMigrator.migrate(
                connection, migrations: Array(PostgresSchema.migrations.prefix(1)), lockKey: PostgresStore.writeLockKey,
                database: "v1")
            _ = try connection.execute(
                """
                INSERT INTO channels VALUES ('web', 'ENHANCED_WEB_CHAT_V2', 'TAB_BASED', 1, NULL, 86400000, true);
                INSERT INTO sessions (id, conversation_id, channel_id, status, created_at, updated_at, held_capacity, version)
                    VALUES ('s1', 'c1', 'web', 'WAITING', 0, 0, 0, 1);
                INSERT INTO messages VALUES ('m1', 's1', 'CUSTOMER', 'hello', 5);
                """)
        }
        let store = try PostgresStore(url: url, options: .forTests)
        #expect(try store.schemaVersion() == PostgresStore.latestSchemaVersion)
        let stored = try store.read { try $0.message(channelId: "web", id: "m1") }
        #expect(stored == Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "hello", time: Timestamp(millisecondsSinceEpoch: 5)))
        let again = #expect(throws: DomainError.self) {
            try store.write { try $0.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .rep, text: "x", time: .epoch)) }
        }
        #expect(again?.code == .alreadyExists)
    }

    @Test func refusesADatabaseFromANewerBuild() throws {
        let url = try PostgresTestServer.makeDatabase()
        let store = try PostgresStore(url: url, options: .forTests)
        let future = PostgresStore.latestSchemaVersion + 1
        _ = try store.write { repo throws in
            try repo.connection.run("INSERT INTO schema_migrations VALUES ($1, 'from the future', 0)", [future])
        }
        let error = #expect(throws: PostgresStoreError.self) { _ = try PostgresStore(url: url, options: .forTests) }
        #expect(
            error == .databaseNewerThanCode(
                database: store.database, databaseVersion: future, latestKnownVersion: PostgresStore.latestSchemaVersion))
    }

    @Test func refusesURLsLibpqCannotRead() {
        for url in ["mysql://root@localhost/db", "sessions.sqlite", "postgres://[::1/db", "postgres://h/db?nonsense=1"] {
            let error = #expect(throws: PostgresStoreError.self, "\(url)") { _ = try PostgresStore(url: url) }
            if case .invalidURL = error {} else { Issue.record("\(url): expected invalidURL, got \(String(describing: error))") }
        }
    }

    @Test func corruptStoredValuesAreReported() throws {
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: .forTests)
        try store.write { try $0.insertChannel(Fixtures.plainChannel("web")) }
        _ = try store.write { try $0.connection.run("UPDATE channels SET type = 'CARRIER_PIGEON'") }
        let error = #expect(throws: PostgresStoreError.self) { _ = try store.read { try $0.channel(id: "web") } }
        #expect(error == .corruptValue(table: "channels", column: "type", value: "CARRIER_PIGEON"))
    }

    @Test func constraintsHoldForRowsWrittenAroundTheStore() throws {
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: .forTests)
        let check = #expect(throws: PostgresError.self) {
            try store.write { try $0.connection.run("INSERT INTO tokens VALUES ('\\x01'::bytea, 'REP', NULL, 'x', 0, NULL)") }
        }
        #expect(check?.sqlState == "23514")
        #expect(check?.constraint == "tokens_check")
        #expect(check?.sql?.contains("INSERT INTO tokens") == true)
        // The failed statement rolled the transaction back; the store goes on.
        try store.write { try $0.insertChannel(Fixtures.plainChannel("web")) }
        #expect(try store.read { try $0.channels(after: nil, limit: 5).map(\.id) } == ["web"])
    }

    /// Values travel as bound parameters, never as SQL: quotes, backslashes,
    /// `$1` and SQL fragments come back byte for byte; a NUL, which PostgreSQL
    /// text cannot hold, is refused instead of cut off.
    @Test func valuesAreBoundNeverSpliced() throws {
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: .forTests)
        let nasty = "x'); DROP TABLE sessions; -- \\ $1 \"q\" ☃"
        try store.write { repo throws in
            try repo.insertChannel(Fixtures.plainChannel("web"))
            try repo.upsertRep(Fixtures.rep("r1"))
            var rep = Fixtures.rep("r2")
            rep.displayName = nasty
            try repo.upsertRep(rep)
            try repo.insertSession(Fixtures.plainSession("s1", conversation: nasty, channel: "web"))
        }
        #expect(try store.read { try $0.rep(id: "r2")?.displayName } == nasty)
        #expect(try store.read { try $0.openSession(conversationId: nasty)?.id } == "s1")
        let error = #expect(throws: PostgresError.self) {
            try store.write { repo throws in
                try repo.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "a\u{0}b", time: Fixtures.t0))
            }
        }
        #expect(error?.sqlState == "22021")
        #expect(try store.read { try $0.message(channelId: "web", id: "m1") } == nil)
        // Every row written above used a prepared statement, cached per connection.
        try store.write { repo in #expect(repo.connection.preparedStatementCount > 0) }
    }

    /// The hot queries can use their indexes (sequential scans disabled so
    /// that the planner shows what it can do, not what an empty table costs).
    @Test func hotQueriesUseTheirIndexes() throws {
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: .forTests)
        try store.read { repo throws in
            try repo.connection.execute("SET LOCAL enable_seqscan = off")
            func plan(_ sql: String, _ arguments: [any PostgresBindable]) throws -> String {
                try repo.connection.query("EXPLAIN " + sql, arguments) { try $0.string(0) }.joined(separator: " | ")
            }
            let head = try plan(PostgresRepository.waitingHeadSQL, [10])
            #expect(head.contains("sessions_waiting_queue") && !head.contains("Sort"), "\(head)")
            let after = try plan(PostgresRepository.waitingAfterSQL, [1, "s", 10])
            #expect(after.contains("sessions_waiting_queue") && !after.contains("Sort"), "\(after)")
            let open = try plan("SELECT id FROM sessions WHERE conversation_id = $1 AND status <> 'ENDED'", ["c"])
            #expect(open.contains("sessions_open_conversation"), "\(open)")
            // Each side stops after `limit` rows of its index: no sort of every due session.
            let due = try plan(PostgresRepository.dueDeadlineSQL, [1, 10])
            #expect(due.contains("sessions_inactivity_deadline") && due.contains("sessions_auto_end_deadline"), "\(due)")
            #expect(!due.contains("Seq Scan"), "\(due)")
            let repStatus = try plan("SELECT id FROM sessions WHERE rep_id = $1 AND status = $2 ORDER BY id", ["r", "ACTIVE"])
            #expect(repStatus.contains("sessions_rep_status"), "\(repStatus)")
            let sequence = try plan("SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE session_id = $1", ["s"])
            #expect(sequence.contains("events_session_id_sequence_key"), "\(sequence)")
            let cursor = try plan("SELECT coalesce(max(cursor), 0) + 1 FROM events", [])
            #expect(cursor.contains("events_pkey"), "\(cursor)")
        }
    }

    /// A serialization failure or deadlock re-runs the whole closure on a clean
    /// transaction, a few times; then the error surfaces.
    @Test func conflictsAreRetriedThenReported() throws {
        var options = PostgresStore.Options.forTests
        options.conflictRetries = 2
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: options)
        func conflict(_ code: String, in repo: PostgresRepository) throws {
            try repo.connection.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = '\(code)'; END $$")
        }
        var attempts = 0
        let result = try store.write { repo throws -> Int in
            attempts += 1
            try repo.insertChannel(Fixtures.plainChannel("attempt-\(attempts)"))
            if attempts == 1 { try conflict("40001", in: repo) }
            if attempts == 2 { try conflict("40P01", in: repo) }
            return attempts
        }
        #expect(result == 3)
        // Only the last attempt's work committed.
        #expect(try store.read { try $0.channels(after: nil, limit: 10).map(\.id) } == ["attempt-3"])

        attempts = 0
        let error = #expect(throws: PostgresError.self) {
            try store.write { repo in
                attempts += 1
                try conflict("40001", in: repo)
            }
        }
        #expect(error?.sqlState == "40001" && error?.message == "simulated conflict")
        #expect(attempts == 3)
        // Other errors are not retried.
        attempts = 0
        #expect(throws: PostgresError.self) {
            try store.write { repo in
                attempts += 1
                try conflict("23505", in: repo)
            }
        }
        #expect(attempts == 1)
    }

    /// A write inside a write on the same thread would wait for its own lock,
    /// even through another store on the same database: refused at once.
    @Test func nestedWritesAreRefusedAcrossStores() throws {
        let url = try PostgresTestServer.makeDatabase()
        let first = try PostgresStore(url: url, options: .forTests)
        let second = try PostgresStore(url: url, options: .forTests)
        let error = #expect(throws: PostgresStoreError.self) {
            try first.write { _ in try second.write { _ in } }
        }
        #expect(error == .nestedWrite)
        // The thread is free again afterwards.
        try second.write { try $0.insertChannel(Fixtures.plainChannel("web")) }
        #expect(try first.read { try $0.channel(id: "web") } != nil)
    }

    /// A read-only transaction refuses writes even past the repository's own check.
    @Test func readTransactionsAreReadOnlyInTheDatabaseToo() throws {
        let store = try PostgresStore(url: try PostgresTestServer.makeDatabase(), options: .forTests)
        let error = #expect(throws: PostgresError.self) {
            try store.read { try $0.connection.run("INSERT INTO channels VALUES ('x', 'STANDARD_SMS', 'TAB_BASED', 1, NULL, 1, true)") }
        }
        #expect(error?.sqlState == "25006")
        #expect(try store.read { try $0.channels(after: nil, limit: 5) } == [])
    }
}
