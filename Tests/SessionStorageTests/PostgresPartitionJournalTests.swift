import Dispatch
import Foundation
import PostgresTestSupport
import SessionCore
import Synchronization
import Testing

@testable import SessionStorage

/// The PostgreSQL journal below a state owner: a batch is one statement of array parameters, so
/// every value must survive the array-literal encoding, and the lock must fence a second owner.
@Suite("PostgreSQL partition journal")
struct PostgresPartitionJournalTests {
    static func journal(_ url: String) throws -> PostgresPartitionJournal {
        try PostgresPartitionJournal(store: PostgresStore(url: url, options: .forTests), url: url, lease: .seconds(10))
    }

    /// Text that an array literal must quote or escape: quotes, backslashes, braces, commas,
    /// spaces, the word NULL, empty strings, non-ASCII, newlines.
    static let awkward = ["a\"b", "back\\slash", "{braces}", "comma,separated", " spaced ", "NULL", "", "héllo — Zoë 🎉", "line\nbreak"]

    @Test("Every row kind, with awkward text and NULLs, comes back as committed")
    func roundTrip() throws {
        let url = try PostgresTestServer.makeDatabase()
        let journal = try Self.journal(url)
        #expect(try journal.tryAcquire())
        defer { journal.release() }
        try journal.advertise(address: "127.0.0.1:1", now: 1)
        var batch = JournalBatch()
        batch.record(Fixtures.fullChannel("web"))
        var rep = Fixtures.rep("r1")
        rep.displayName = Self.awkward.joined(separator: "|")
        batch.record(rep)
        batch.record(Fixtures.fullSession("s1", conversation: "c\"1\\", channel: "web", rep: "r1"))
        batch.record(Session(id: "s2", conversationId: "NULL", channelId: "web", status: .waiting, createdAt: Fixtures.t0, updatedAt: Fixtures.t0))
        batch.record(Event(cursor: 1, sessionId: "s2", sequence: 1, time: Fixtures.t0, actor: .system, from: nil, to: .waiting, repId: nil, reason: .created))
        batch.record(Event(cursor: 2, sessionId: "s1", sequence: 1, time: Fixtures.t0, actor: .rep("r1"), from: nil, to: .active, repId: "r1", reason: .routed))
        for (i, text) in Self.awkward.enumerated() {
            batch.record(Message(messageId: "m\(i)", channelId: "web", sessionId: "s1", sender: .customer, text: text, time: Fixtures.t0))
        }
        batch.record(setting: "clock.offset", -5)
        try journal.commit(batch)

        let loaded = try journal.loadPartition()
        #expect(loaded.channels == batch.channels)
        #expect(loaded.reps == batch.reps)
        #expect(Set(loaded.openSessions.map(\.id)) == ["s1", "s2"])
        for session in batch.sessions { #expect(loaded.openSessions.first { $0.id == session.id } == session) }
        #expect(loaded.settings["clock.offset"] == -5)
        #expect(loaded.headCursor == 2)
        #expect(loaded.messageFingerprints.count == Self.awkward.count)
        for (i, text) in Self.awkward.enumerated() {
            let stored = try journal.readDurable { try $0.message(channelId: "web", id: "m\(i)") }
            #expect(stored?.text == text, "message m\(i)")
        }
        #expect(try journal.readDurable { try $0.events(sessionId: "s1", afterSequence: 0, limit: 10) } == [batch.events[1]])
        #expect(try journal.lastSequences(sessionIds: ["s1", "s2", "nobody"]) == ["s1": 1, "s2": 1])
        #expect(try journal.lastSequence(sessionId: "nobody") == 0)
    }

    @Test("Journals sharing one lock-try connection: the winner gets its own schema and name, whichever partition's try opened it")
    func sharedTryConnection() throws {
        let url = try PostgresTestServer.makeDatabase()
        var tenantOptions = PostgresStore.Options.forTests
        tenantOptions.schema = PostgresStore.Options.schema(forTenant: "x")
        let main = try PostgresStore(url: url, options: .forTests), tenantStore = try PostgresStore(url: url, options: tenantOptions)
        let shared = PostgresLockCandidate()
        // Another holder keeps tenant x's lock, so x's try fails and leaves the shared connection.
        let holder = try PostgresPartitionJournal(store: tenantStore, url: url, lease: .seconds(10), partition: "x")
        #expect(try holder.tryAcquire())
        defer { holder.release() }
        let x = try PostgresPartitionJournal(store: tenantStore, url: url, lease: .seconds(10), partition: "x", candidates: shared)
        #expect(try !x.tryAcquire())
        // The default partition wins on that connection and advertises itself in its own schema.
        let fallback = try PostgresPartitionJournal(store: main, url: url, lease: .seconds(10), partition: "default", candidates: shared)
        #expect(try fallback.tryAcquire())
        defer { fallback.release() }
        try fallback.advertise(address: "127.0.0.1:7", now: 1)
        #expect(try main.partitionOwnerAddress(schema: nil, partition: "default") == "127.0.0.1:7")
        #expect(try main.partitionOwnerAddress(schema: tenantOptions.schema, partition: "default") == nil)
        let names = try PostgresConnection(configuration: .init(url: url)).query(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%(owner of %'", []) { try $0.string(0) }
        #expect(names.filter { $0.hasSuffix("(owner of default)") }.count == 1, "\(names)")
    }

    @Test("A second journal cannot take the partition while the first holds it, and takes it once released")
    func oneOwnerAtATime() throws {
        let url = try PostgresTestServer.makeDatabase()
        let first = try Self.journal(url), second = try Self.journal(url)
        #expect(try first.tryAcquire())
        #expect(try !second.tryAcquire())
        #expect(!second.isOwner)
        var batch = JournalBatch()
        batch.record(Fixtures.plainChannel("web"))
        #expect(throws: PostgresStoreError.self) { try second.commit(batch) }
        try first.advertise(address: "127.0.0.1:1", now: 1)
        #expect(try second.ownerAddress() == "127.0.0.1:1")
        let firstEpoch = first.epoch
        first.release()
        #expect(first.epoch == 0, "a released journal forgets its epoch")
        #expect(try second.tryAcquire())
        defer { second.release() }
        try second.advertise(address: "127.0.0.1:2", now: 2)
        #expect(second.epoch == firstEpoch + 1, "each new owner advertises the next epoch")
        try second.commit(batch)
        #expect(try second.loadPartition().channels.map(\.id) == ["web"])
    }

    @Test("The epoch fences: once partition_owner holds another owner's epoch, a batch writes nothing and the partition is lost")
    func epochFence() throws {
        let url = try PostgresTestServer.makeDatabase()
        let journal = try Self.journal(url)
        #expect(try journal.tryAcquire())
        defer { journal.release() }
        try journal.advertise(address: "127.0.0.1:1", now: 1)
        var first = JournalBatch()
        first.record(Fixtures.plainChannel("web"))
        try journal.commit(first)
        let lost = Mutex<String?>(nil)
        let told = DispatchSemaphore(value: 0)
        journal.onLost { reason in
            lost.withLock { $0 = reason }
            told.signal()
        }
        // Another owner's epoch, as a takeover writes it.
        let other = try PostgresConnection(configuration: .init(url: url))
        try other.run("UPDATE partition_owner SET epoch = epoch + 1 WHERE partition = 'default'")
        var second = JournalBatch()
        second.record(Fixtures.plainChannel("web-2"))
        second.record(Fixtures.rep("r1"))
        second.record(setting: "clock.offset", 7)
        #expect(throws: PostgresStoreError.self) { try journal.commit(second) }
        #expect(told.wait(timeout: .now() + 5) == .success, "the owner was not told it lost the partition")
        #expect(lost.withLock { $0 }?.contains("epoch") == true)
        let reader = try Self.journal(url)
        let stored = try reader.loadPartition()
        #expect(stored.channels.map(\.id) == ["web"], "a fenced batch wrote channels")
        #expect(stored.reps.isEmpty && stored.settings["clock.offset"] == nil, "a fenced batch wrote rows")
        #expect(throws: PostgresStoreError.self) { try journal.commit(first) }
    }

    @Test("The group commit writes several tenants' batches in one statement, each fenced by its own epoch")
    func groupCommitAcrossTenants() throws {
        let url = try PostgresTestServer.makeDatabase()
        var options = PostgresStore.Options.forTests
        options.schema = PostgresStore.Options.schema(forTenant: "acme")
        let main = try PostgresStore(url: url, options: .forTests)
        let committer = PostgresGroupCommitter(store: main, url: url)
        let a = try PostgresPartitionJournal(store: main, url: url, lease: .seconds(10))
        let b = try PostgresPartitionJournal(store: PostgresStore(url: url, options: options), url: url, lease: .seconds(10), partition: "acme")
        for journal in [a, b] {
            journal.useGroupCommit(committer)
            #expect(try journal.tryAcquire())
            try journal.advertise(address: "127.0.0.1:1", now: 1)
        }
        defer { a.release(); b.release() }
        // Both at once: one statement may carry both.
        var batchA = JournalBatch(), batchB = JournalBatch()
        batchA.record(Fixtures.plainChannel("a-web"))
        batchB.record(Fixtures.plainChannel("b-web"))
        let group = DispatchGroup()
        let failures = Mutex<[String]>([])
        for (journal, batch) in [(a, batchA), (b, batchB)] {
            DispatchQueue.global().async(group: group) {
                do { try journal.commit(batch) } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        group.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try a.loadPartition().channels.map(\.id) == ["a-web"], "each tenant's rows in its own schema")
        #expect(try b.loadPartition().channels.map(\.id) == ["b-web"])
        // acme taken over elsewhere: its batches write nothing, the default tenant's still commit.
        let other = try PostgresConnection(configuration: .init(url: url))
        try other.run("UPDATE tenant_acme.partition_owner SET epoch = epoch + 1")
        var laterB = JournalBatch()
        laterB.record(Fixtures.plainChannel("b-late"))
        #expect(throws: PostgresStoreError.self) { try b.commit(laterB) }
        var laterA = JournalBatch()
        laterA.record(Fixtures.plainChannel("a-late"))
        try a.commit(laterA)
        #expect(try a.loadPartition().channels.map(\.id).sorted() == ["a-late", "a-web"])
        #expect(try b.loadPartition().channels.map(\.id) == ["b-web"], "a fenced tenant's batch wrote rows")
    }
}

