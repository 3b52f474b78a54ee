import SessionCore
import Testing

@Suite("InMemoryRepository contract")
struct InMemoryRepositoryTests {
    private func session(_ id: String, conversation: String, status: SessionStatus = .waiting,
                         queuedAt: Int64? = nil, version: Int64 = 1) -> Session {
        Session(id: id, conversationId: conversation, channelId: "web", status: status,
                createdAt: .epoch, updatedAt: .epoch,
                queuedAt: queuedAt.map { Timestamp(millisecondsSinceEpoch: $0) } ?? (status == .waiting ? .epoch : nil),
                version: version)
    }

    @Test("Event sequences are per session, from 1, gapless; cursors are global and increasing")
    func eventNumbering() {
        var repo = InMemoryRepository()
        let make = { (id: String) in
            Event(sessionId: id, time: .epoch, actor: .system, from: nil, to: .waiting, repId: nil, reason: .created)
        }
        let a1 = repo.appendEvent(make("a"))
        let b1 = repo.appendEvent(make("b"))
        let a2 = repo.appendEvent(make("a"))
        #expect([a1.sequence, b1.sequence, a2.sequence] == [1, 1, 2])
        #expect([a1.cursor, b1.cursor, a2.cursor] == [1, 2, 3])
        #expect(repo.events(sessionId: "a", afterSequence: 1, limit: 10) == [a2])
        #expect(repo.events(afterCursor: 1, limit: 1) == [b1])
        #expect(repo.events(afterCursor: 3, limit: 10).isEmpty)
        #expect(repo.events(afterCursor: -5, limit: 10).count == 3)
    }

    @Test("A conversation has at most one open session")
    func oneOpenSession() throws {
        var repo = InMemoryRepository()
        try repo.insertSession(session("s1", conversation: "c1"))
        expectDomainError(.alreadyExists, "conversation c1 already has open session s1") {
            try repo.insertSession(session("s2", conversation: "c1"))
        }
        expectDomainError(.alreadyExists, "session s1 already exists") {
            try repo.insertSession(session("s1", conversation: "c9"))
        }
        var ended = session("s1", conversation: "c1", status: .ended, version: 2)
        ended.queuedAt = nil
        try repo.updateSession(ended)
        #expect(repo.openSession(conversationId: "c1") == nil)
        try repo.insertSession(session("s2", conversation: "c1"))
        #expect(repo.openSession(conversationId: "c1")?.id == "s2")
    }

    @Test("A stale session update loses: the store checks the version (optimistic concurrency)")
    func versionCheck() throws {
        var repo = InMemoryRepository()
        try repo.insertSession(session("s1", conversation: "c1"))
        var winner = session("s1", conversation: "c1", version: 2)
        winner.updatedAt = Timestamp(millisecondsSinceEpoch: 5)
        try repo.updateSession(winner)
        expectDomainError(.aborted, "session s1 was changed concurrently") {
            try repo.updateSession(session("s1", conversation: "c1", version: 2))
        }
        expectDomainError(.notFound, "session s9 does not exist") {
            try repo.updateSession(session("s9", conversation: "c1", version: 2))
        }
        #expect(repo.session(id: "s1") == winner)
    }

    @Test("The queue lists WAITING sessions by time queued, then id, from a keyset position")
    func queueOrder() throws {
        var repo = InMemoryRepository()
        try repo.insertSession(session("s3", conversation: "c3", queuedAt: 10))
        try repo.insertSession(session("s2", conversation: "c2", queuedAt: 20))
        try repo.insertSession(session("s1", conversation: "c1", queuedAt: 20))
        try repo.insertSession(session("s0", conversation: "c0", status: .active))
        #expect(repo.waitingSessions(after: nil, limit: 10).map(\.id) == ["s3", "s1", "s2"])
        let position = QueuePosition(queuedAt: Timestamp(millisecondsSinceEpoch: 20), sessionId: "s1")
        #expect(repo.waitingSessions(after: position, limit: 10).map(\.id) == ["s2"])
        #expect(repo.waitingSessions(after: nil, limit: 1).map(\.id) == ["s3"])
    }

    @Test("Due deadlines are listed earliest first, up to a limit")
    func dueDeadlines() throws {
        var repo = InMemoryRepository()
        var a = session("a", conversation: "ca", status: .active)
        a.inactivityDeadline = Timestamp(millisecondsSinceEpoch: 50)
        var b = session("b", conversation: "cb", status: .inactive)
        b.autoEndDeadline = Timestamp(millisecondsSinceEpoch: 30)
        var c = session("c", conversation: "cc", status: .inactive)
        c.autoEndDeadline = Timestamp(millisecondsSinceEpoch: 500)
        for s in [a, b, c] { try repo.insertSession(s) }
        let now = Timestamp(millisecondsSinceEpoch: 100)
        #expect(repo.sessionsWithDueDeadline(at: now, limit: 10).map(\.id) == ["b", "a"])
        #expect(repo.sessionsWithDueDeadline(at: now, limit: 1).map(\.id) == ["b"])
    }

    @Test("A transaction that throws leaves the repository untouched")
    func transactionRollback() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        let session = try world.customerWrites("a", on: "web").session
        let before = world.repo.events(afterCursor: 0, limit: 100)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try world.run { engine, repo, now in
                _ = try engine.markInactive(sessionId: session.id, by: .rep("r1"), at: now, in: &repo)
                throw Boom()
            }
        }
        #expect(world.session(session.id).status == .active)
        #expect(world.rep("r1").usedCapacity == 1)
        #expect(world.repo.events(afterCursor: 0, limit: 100) == before)
    }

    @Test("Message records are unique by id")
    func messages() throws {
        var repo = InMemoryRepository()
        let message = Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "hi", time: .epoch)
        try repo.insertMessage(message)
        #expect(repo.message(channelId: "web", id: "m1") == message)
        expectDomainError(.alreadyExists, "message m1 already exists on channel web") {
            try repo.insertMessage(message)
        }
    }

    @Test("Sequential ids sort in creation order; random ids are unique and prefixed")
    func idGenerators() {
        var sequential = SequentialIDGenerator()
        #expect(sequential.makeSessionID(at: .epoch) == "ses_000001")
        #expect(sequential.makeSessionID(at: .epoch) == "ses_000002")
        var random = RandomIDGenerator()
        let ids = (0..<100).map { _ in random.makeSessionID(at: Timestamp(millisecondsSinceEpoch: 1_700_000_000_000)) }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.hasPrefix("ses_") && $0.count == 32 })
        let earlier = random.makeSessionID(at: Timestamp(millisecondsSinceEpoch: 1_000))
        let later = random.makeSessionID(at: Timestamp(millisecondsSinceEpoch: 2_000))
        #expect(earlier < later)
    }
}
