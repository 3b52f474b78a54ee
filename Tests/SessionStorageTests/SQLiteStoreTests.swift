import Dispatch
import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// `SQLiteStore`: transactions, concurrency, durability across reopen, schema versions and misuse.
@Suite struct SQLiteStoreTests {
    @Test func opensWithTheLatestSchemaAndTheDurablePragmas() throws {
        try TemporaryDirectory.with { directory in
            // The directory of the file is created on demand.
            let path = directory.file("nested/deeper/sessions.sqlite")
            let store = try SQLiteStore(path: path)
            #expect(FileManager.default.fileExists(atPath: path))
            #expect(try store.schemaVersion() == SQLiteStore.latestSchemaVersion)
            #expect(store.options.durability == .full)
            try store.write { repo throws in
                #expect(try repo.connection.queryOne("PRAGMA journal_mode") { try $0.string(0) } == "wal")
                #expect(try repo.connection.queryOne("PRAGMA synchronous") { try $0.int(0) } == 2)  // FULL
                #expect(try repo.connection.queryOne("PRAGMA foreign_keys") { try $0.int(0) } == 1)
            }
        }
    }

    @Test func reopeningAppliesNoMigrationTwice() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("sessions.sqlite")
            for _ in 0..<3 {
                let store = try SQLiteStore(path: path)
                #expect(try store.schemaVersion() == SQLiteStore.latestSchemaVersion)
            }
            let connection = try SQLiteConnection(path: path)
            #expect(try SQLiteMigrator.appliedVersions(connection) == SessionSchema.migrations.map(\.version))
        }
    }

    /// Version 2 scopes message ids per channel by rebuilding `messages`: a database written by
    /// version 1 keeps every message, each under the channel of its session.
    @Test func messagesWrittenBeforeMigration2StayValid() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("sessions.sqlite")
            do {
                let connection = try SQLiteConnection(path: path)
                try SQLiteMigrator.migrate(connection, migrations: Array(SessionSchema.migrations.prefix(1)))
                try connection.execute(
                    """
                    INSERT INTO channels VALUES ('web', 'ENHANCED_WEB_CHAT_V2', 'TAB_BASED', 1, NULL, 86400000, 1);
                    INSERT INTO sessions (id, conversation_id, channel_id, status, created_at, updated_at, held_capacity, version)
                        VALUES ('s1', 'c1', 'web', 'WAITING', 0, 0, 0, 1);
                    INSERT INTO messages VALUES ('m1', 's1', 'CUSTOMER', 'hello', 5);
                    """)
            }
            let store = try SQLiteStore(path: path)
            #expect(try store.schemaVersion() == SQLiteStore.latestSchemaVersion)
            let stored = try store.read { try $0.message(channelId: "web", id: "m1") }
            #expect(stored == Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "hello", time: Timestamp(millisecondsSinceEpoch: 5)))
            // The same key is still refused; the rebuilt table kept its constraints.
            let again = #expect(throws: DomainError.self) {
                try store.write { try $0.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .rep, text: "x", time: .epoch)) }
            }
            #expect(again?.code == .alreadyExists)
        }
    }

    @Test func refusesADatabaseFromANewerBuild() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("sessions.sqlite")
            _ = try SQLiteStore(path: path)
            let connection = try SQLiteConnection(path: path)
            let future = SQLiteStore.latestSchemaVersion + 1
            try connection.run("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", [future])
            let error = #expect(throws: SQLiteSchemaError.self) { _ = try SQLiteStore(path: path) }
            #expect(
                error
                    == .databaseNewerThanCode(
                        path: path, databaseVersion: future, latestKnownVersion: SQLiteStore.latestSchemaVersion))
        }
    }

    /// Group commit: closures that throw in a batch roll back only themselves.
    @Test func aThrowingWriteInAConcurrentBatchRollsBackOnlyItself() throws {
        struct Refused: Error {}
        try withStore { store, _ in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            let writers = 8
            let writesEach = 30
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: writers) { worker in
                for step in 0..<writesEach {
                    let refuse = (worker + step) % 3 == 0
                    do {
                        try store.write { repo throws in
                            _ = try repo.appendEvent(Fixtures.event("s1", at: Int64(worker * 1000 + step)))
                            if refuse { throw Refused() }
                        }
                        if refuse { failures.add("a refused write returned") }
                    } catch is Refused {
                        if !refuse { failures.add("an accepted write was refused") }
                    } catch {
                        failures.add("\(error)")
                    }
                }
            }
            #expect(failures.all.isEmpty)
            let accepted = (0..<writers).flatMap { w in (0..<writesEach).filter { (w + $0) % 3 != 0 }.map { Int64(w * 1000 + $0) } }
            try store.read { repo throws in
                let events = try repo.events(sessionId: "s1", afterSequence: 0, limit: 10_000)
                #expect(Set(events.map(\.time)) == Set(accepted.map { Fixtures.time($0) }))
                #expect(events.map(\.sequence) == Array(1...Int64(accepted.count)))
            }
        }
    }

    @Test func checkpointEmptiesTheLog() throws {
        try withStore { store, _ in
            try store.write { try $0.insertChannel(Fixtures.plainChannel("a")) }
            try store.checkpoint()
            let attributes = try FileManager.default.attributesOfItem(atPath: store.path + "-wal")
            #expect((attributes[.size] as? NSNumber)?.intValue == 0)
            #expect(try store.read { try $0.channel(id: "a") } != nil)
        }
    }

    @Test func corruptStoredValuesAreReported() throws {
        try withStore { store, directory in
            try store.write { try $0.insertChannel(Fixtures.plainChannel("web")) }
            // A value this build does not know (written by hand, bypassing the store).
            let raw = try SQLiteConnection(path: store.path)
            try raw.run("UPDATE channels SET type = 'CARRIER_PIGEON'")
            let error = #expect(throws: SQLiteStoreError.self) { _ = try store.read { try $0.channel(id: "web") } }
            #expect(error == .corruptValue(table: "channels", column: "type", value: "CARRIER_PIGEON"))
        }
    }

    @Test func hotQueriesUseTheirIndexes() throws {
        try withStore { store, _ in
            try store.read { repo throws in
                func plan(_ sql: String, _ arguments: [any SQLiteBindable]) throws -> String {
                    try repo.connection.query("EXPLAIN QUERY PLAN " + sql, arguments) { try $0.string(3) }
                        .joined(separator: " | ")
                }
                let queue = try plan(SQLiteRepository.waitingAfterSQL, [1, "s", 10])
                #expect(queue.contains("sessions_waiting_queue") && !queue.contains("TEMP B-TREE"), "\(queue)")
                let head = try plan(SQLiteRepository.waitingHeadSQL, [10])
                #expect(head.contains("sessions_waiting_queue") && !head.contains("TEMP B-TREE"), "\(head)")
                let open = try plan("SELECT id FROM sessions WHERE conversation_id = ? AND status <> 'ENDED'", ["c"])
                #expect(open.contains("sessions_open_conversation"), "\(open)")
                let due = try plan(SQLiteRepository.dueDeadlineSQL, [1, 10])
                #expect(due.contains("sessions_inactivity_deadline") && due.contains("sessions_auto_end_deadline"), "\(due)")
                let repStatus = try plan(
                    "SELECT id FROM sessions WHERE rep_id = ? AND status = ? ORDER BY id LIMIT ?", ["r", "ACTIVE", 10])
                #expect(repStatus.contains("sessions_rep_status") && !repStatus.contains("TEMP B-TREE"), "\(repStatus)")
                let byChannel = try plan(
                    "SELECT id FROM sessions WHERE channel_id = ? AND status = ? ORDER BY id LIMIT ?", ["w", "ACTIVE", 10])
                #expect(byChannel.contains("sessions_channel_status"), "\(byChannel)")
                let available = try plan("SELECT id FROM reps WHERE presence = 'AVAILABLE' ORDER BY id", [])
                #expect(available.contains("reps_available"), "\(available)")
                let sequence = try plan(
                    "SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE session_id = ?", ["s"])
                #expect(sequence.contains("sqlite_autoindex_events"), "\(sequence)")
            }
        }
    }
}

/// An error thrown by a test on purpose.
struct Boom: Error {}

/// Errors collected from concurrent workers.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []

    func add(_ message: String) {
        lock.lock()
        messages.append(message)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return messages
    }
}
