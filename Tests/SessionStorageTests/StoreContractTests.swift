import Dispatch
import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// The storage contract, run unchanged against SQLite (a temporary file) and
/// PostgreSQL (a fresh database on the test server): every repository method,
/// the orderings, the constraint refusals, event sequences and cursors, timers,
/// tokens, transactions, and the engine's lifecycle scenario compared with the
/// in-memory reference repository.
@Suite struct StoreContractTests {
    // MARK: Channels

    @Test(arguments: StoreKind.allCases)
    func channelsRoundTripEveryFieldAndRefuseDuplicates(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.fullChannel("web-eu"))
                try repo.insertChannel(Fixtures.plainChannel("sms-us"))
            }
            try store.read { repo throws in
                #expect(try repo.channel(id: "web-eu") == Fixtures.fullChannel("web-eu"))
                #expect(try repo.channel(id: "sms-us") == Fixtures.plainChannel("sms-us"))
                #expect(try repo.channel(id: "nope") == nil)
            }
            var changed = Fixtures.plainChannel("web-eu")
            changed.capacityWeight = 9
            try store.write { try $0.updateChannel(changed) }
            #expect(try store.read { try $0.channel(id: "web-eu") } == changed)
            changed.customerInactivityTimeout = .seconds(1)
            changed.inactivateActionVisible = true
            try store.write { try $0.updateChannel(changed) }
            #expect(try store.read { try $0.channel(id: "web-eu") } == changed)

            let duplicate = expectDomainError(.alreadyExists) {
                try store.write { try $0.insertChannel(Fixtures.plainChannel("web-eu")) }
            }
            #expect(duplicate == "channel web-eu already exists")
            let missing = expectDomainError(.notFound) {
                try store.write { try $0.updateChannel(Fixtures.plainChannel("ghost")) }
            }
            #expect(missing == "channel ghost does not exist")
            #expect(try store.read { try $0.channel(id: "web-eu") } == changed)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func channelsPageInIdOrderByCodePoint(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            // Upper case sorts before lower case, "-" before "_", and "é" after "z": byte order.
            let ids = ["b", "a", "d", "c", "e", "B", "é", "z", "a_1", "a-1"]
            try store.write { repo in for id in ids { try repo.insertChannel(Fixtures.plainChannel(id)) } }
            let sorted = ids.sorted()
            #expect(sorted.first == "B" && sorted.last == "é")
            try store.read { repo throws in
                #expect(try repo.channels(after: nil, limit: 100).map(\.id) == sorted)
                #expect(try repo.channels(after: nil, limit: 2).map(\.id) == Array(sorted.prefix(2)))
                #expect(try repo.channels(after: "b", limit: 2).map(\.id) == ["c", "d"])
                #expect(try repo.channels(after: "z", limit: 2).map(\.id) == ["é"])
                #expect(try repo.channels(after: "é", limit: 2).map(\.id) == [])
                #expect(try repo.channels(after: nil, limit: 0).isEmpty)
                #expect(try repo.channels(after: nil, limit: -1).isEmpty)  // not "no limit"
            }
        }
    }

    // MARK: Reps

    @Test(arguments: StoreKind.allCases)
    func repsRoundTripEveryFieldAndUpsert(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let full = Fixtures.rep("r1", presence: .busy, capacity: 100, used: 101, idleSince: Fixtures.time(42))
            let none = Fixtures.rep("r2", presence: .offline, permissions: [], capacity: 1)
            try store.write { repo throws in
                try repo.upsertRep(full)
                try repo.upsertRep(none)
            }
            #expect(try store.read { try $0.rep(id: "r1") } == full)
            #expect(try store.read { try $0.rep(id: "r2") } == none)
            #expect(try store.read { try $0.rep(id: "r3") } == nil)

            for permissions in [Set<Permission>([.enhancedChatRep]), [.messagingAgent, .enhancedChatUser], []] {
                var updated = full
                updated.displayName = "Renamed ✓"
                updated.capacity = 3
                updated.presence = .available
                updated.permissions = permissions
                updated.usedCapacity = 0
                updated.idleSince = Fixtures.time(99)
                try store.write { try $0.upsertRep(updated) }
                #expect(try store.read { try $0.rep(id: "r1") } == updated)
            }
            #expect(try store.read { try $0.reps(after: nil, limit: 10).count } == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func availableRepsAndRepPages(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.upsertRep(Fixtures.rep("c", presence: .available))
                try repo.upsertRep(Fixtures.rep("a", presence: .available))
                try repo.upsertRep(Fixtures.rep("b", presence: .busy))
                try repo.upsertRep(Fixtures.rep("d", presence: .offline))
                try repo.upsertRep(Fixtures.rep("A", presence: .available))
            }
            try store.read { repo throws in
                #expect(try repo.availableReps().map(\.id) == ["A", "a", "c"])
                #expect(try repo.reps(after: nil, limit: 3).map(\.id) == ["A", "a", "b"])
                #expect(try repo.reps(after: "b", limit: 3).map(\.id) == ["c", "d"])
                #expect(try repo.reps(after: nil, limit: -5).isEmpty)
            }
        }
    }

    // MARK: Sessions

    @Test(arguments: StoreKind.allCases)
    func sessionsRoundTripEveryFieldIncludingNils(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let full = Fixtures.fullSession("s1", conversation: "c1", channel: "web", rep: "r1")
            let plain = Fixtures.plainSession("s2", conversation: "c2", channel: "web")
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.fullChannel("web"))
                try repo.upsertRep(Fixtures.rep("r1"))
                try repo.insertSession(full)
                try repo.insertSession(plain)
            }
            try store.read { repo throws in
                #expect(try repo.session(id: "s1") == full)
                #expect(try repo.session(id: "s2") == plain)
                #expect(try repo.session(id: "s3") == nil)
                #expect(try repo.openSession(conversationId: "c1") == full)
                #expect(try repo.openSession(conversationId: "zz") == nil)
            }
            // Update to all-nil and back to all-set.
            let cleared = Session(
                id: "s1", conversationId: "c1", channelId: "web", status: .ended, createdAt: Fixtures.time(10),
                updatedAt: Fixtures.time(11), version: 8)
            try store.write { try $0.updateSession(cleared) }
            #expect(try store.read { try $0.session(id: "s1") } == cleared)
            #expect(try store.read { try $0.openSession(conversationId: "c1") } == nil)
            var refilled = full
            refilled.version = 9
            refilled.status = .inactive
            refilled.endReason = .endedByCustomer
            try store.write { try $0.updateSession(refilled) }
            #expect(try store.read { try $0.session(id: "s1") } == refilled)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func oneOpenSessionPerConversation(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            let second = expectDomainError(.alreadyExists) {
                try store.write { try $0.insertSession(Fixtures.plainSession("s2", conversation: "c1", channel: "web")) }
            }
            #expect(second == "conversation c1 already has open session s1")
            let sameID = expectDomainError(.alreadyExists) {
                try store.write { try $0.insertSession(Fixtures.plainSession("s1", conversation: "c9", channel: "web")) }
            }
            #expect(sameID == "session s1 already exists")

            // Ended sessions do not count: any number of them, plus one open one.
            try store.write { repo throws in
                try repo.insertSession(Fixtures.plainSession("s3", conversation: "c1", channel: "web", status: .ended))
                try repo.insertSession(Fixtures.plainSession("s4", conversation: "c1", channel: "web", status: .ended))
            }
            // End s1, then a new open session is accepted...
            var ended = try #require(try store.read { try $0.session(id: "s1") })
            ended.status = .ended
            ended.version += 1
            try store.write { try $0.updateSession(ended) }
            try store.write { try $0.insertSession(Fixtures.plainSession("s5", conversation: "c1", channel: "web")) }
            // ...and reopening s1 while s5 is open is refused.
            var reopened = ended
            reopened.status = .waiting
            reopened.version += 1
            let reopen = expectDomainError(.alreadyExists) { try store.write { try $0.updateSession(reopened) } }
            #expect(reopen == "conversation c1 already has open session s5")
            #expect(try store.read { try $0.openSession(conversationId: "c1")?.id } == "s5")
            // An open session may be updated while it stays open.
            var moved = try #require(try store.read { try $0.session(id: "s5") })
            moved.status = .active
            moved.repId = nil
            moved.version += 1
            try store.write { try $0.updateSession(moved) }
            #expect(try store.read { try $0.openSession(conversationId: "c1") } == moved)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sessionForeignKeysBecomeNotFound(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let noChannel = expectDomainError(.notFound) {
                try store.write { try $0.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "ghost")) }
            }
            #expect(noChannel == "channel ghost does not exist")
            try store.write { try $0.insertChannel(Fixtures.plainChannel("web")) }
            let noRep = expectDomainError(.notFound) {
                try store.write {
                    try $0.insertSession(Fixtures.fullSession("s1", conversation: "c1", channel: "web", rep: "ghost"))
                }
            }
            #expect(noRep == "rep ghost does not exist")
            try store.write { try $0.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web")) }
            var withGhostRep = try #require(try store.read { try $0.session(id: "s1") })
            withGhostRep.repId = "ghost"
            withGhostRep.version += 1
            #expect(expectDomainError(.notFound) { try store.write { try $0.updateSession(withGhostRep) } }
                == "rep ghost does not exist")
            var withGhostChannel = try #require(try store.read { try $0.session(id: "s1") })
            withGhostChannel.channelId = "ghost"
            withGhostChannel.version += 1
            #expect(expectDomainError(.notFound) { try store.write { try $0.updateSession(withGhostChannel) } }
                == "channel ghost does not exist")
            #expect(try store.read { try $0.session(id: "s1")?.version } == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func updateSessionChecksVersionExistenceAndConversation(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            var next = Fixtures.plainSession("s1", conversation: "c1", channel: "web")
            next.version = 2
            try store.write { try $0.updateSession(next) }

            let stale = expectDomainError(.aborted) { try store.write { try $0.updateSession(next) } }
            #expect(stale == "session s1 was changed concurrently (stored version 2, update expected 1); retry")
            var skipped = next
            skipped.version = 5
            expectDomainError(.aborted) { try store.write { try $0.updateSession(skipped) } }

            var missing = next
            missing.id = "ghost"
            #expect(expectDomainError(.notFound) { try store.write { try $0.updateSession(missing) } }
                == "session ghost does not exist")

            var moved = next
            moved.version = 3
            moved.conversationId = "c2"
            #expect(expectDomainError(.invalidArgument) { try store.write { try $0.updateSession(moved) } }
                == "session s1 cannot move to another conversation")
            #expect(try store.read { try $0.session(id: "s1") } == next)
        }
    }

    /// A set of sessions spread over statuses, reps, channels, queue times and deadlines, stored in
    /// the store and in the reference in-memory repository.
    static func populate(_ store: any ContractStore) throws -> InMemoryRepository {
        var memory = InMemoryRepository()
        let channels = [Fixtures.plainChannel("web"), Fixtures.plainChannel("sms")]
        let reps = [Fixtures.rep("r1"), Fixtures.rep("r2")]
        var sessions: [Session] = []
        let statuses: [SessionStatus] = [.new, .waiting, .active, .inactive, .ended]
        for index in 0..<60 {
            let status = statuses[index % statuses.count]
            var session = Fixtures.plainSession(
                String(format: "s%03d", (index * 37) % 100), conversation: "c\(index)",
                channel: index % 3 == 0 ? "sms" : "web", status: status)
            session.repId = status == .waiting ? nil : (index % 2 == 0 ? "r1" : "r2")
            // Queue times with ties and one WAITING session without queuedAt (falls back on updatedAt).
            session.queuedAt = status == .waiting && index != 11 ? Fixtures.time(Int64(index % 4) * 10) : nil
            session.updatedAt = Fixtures.time(Int64(index))
            if index % 4 == 1 { session.inactivityDeadline = Fixtures.time(Int64((index * 7) % 50)) }
            if index % 3 == 1 { session.autoEndDeadline = Fixtures.time(Int64((index * 11) % 50)) }
            sessions.append(session)
        }
        try store.write { repo throws in
            for channel in channels { try repo.insertChannel(channel) }
            for rep in reps { try repo.upsertRep(rep) }
            for session in sessions { try repo.insertSession(session) }
        }
        try memory.transaction { memory in
            for channel in channels { try memory.insertChannel(channel) }
            for rep in reps { memory.upsertRep(rep) }
            for session in sessions { try memory.insertSession(session) }
        }
        return memory
    }

    @Test(arguments: StoreKind.allCases)
    func sessionQueriesMatchTheReferenceRepository(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let memory = try Self.populate(store)
            try store.read { repo throws in
                for status in [nil] + SessionStatus.allCases.map(Optional.some) {
                    for repId in [nil, "r1", "zz"] {
                        for channelId in [nil, "web", "sms"] {
                            for conversationId in [nil, "c5"] {
                                let filter = SessionFilter(
                                    status: status, repId: repId, channelId: channelId, conversationId: conversationId)
                                for (after, limit) in [(nil, 1000), (nil, 3), ("s040", 5)] as [(String?, Int)] {
                                    #expect(
                                        try repo.sessions(matching: filter, after: after, limit: limit)
                                            == memory.sessions(matching: filter, after: after, limit: limit),
                                        "\(filter) after \(after ?? "-") limit \(limit)")
                                }
                            }
                        }
                    }
                }
                #expect(try repo.sessions(matching: SessionFilter(), after: nil, limit: -1).isEmpty)
                for repId in ["r1", "r2", "zz"] {
                    for status in SessionStatus.allCases {
                        #expect(try repo.sessions(repId: repId, status: status) == memory.sessions(repId: repId, status: status))
                    }
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func waitingQueueIsFIFOWithIdTieBreakAndPages(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let memory = try Self.populate(store)
            try store.read { repo throws in
                let all = try repo.waitingSessions(after: nil, limit: 1000)
                #expect(all == memory.waitingSessions(after: nil, limit: 1000))
                #expect(all.count == 12)
                let keys = all.map { QueuePosition(queuedAt: $0.queuedAt ?? $0.updatedAt, sessionId: $0.id) }
                #expect(keys == keys.sorted())
                var paged: [Session] = []
                var position: QueuePosition?
                while true {
                    let page = try repo.waitingSessions(after: position, limit: 5)
                    #expect(page == memory.waitingSessions(after: position, limit: 5))
                    paged += page
                    guard let last = page.last, page.count == 5 else { break }
                    position = QueuePosition(queuedAt: last.queuedAt ?? last.updatedAt, sessionId: last.id)
                }
                #expect(paged == all)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func dueDeadlinesMatchTheReferenceAndUseTheEarliestDueOne(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let memory = try Self.populate(store)
            try store.read { repo throws in
                for offset: Int64 in [-1, 0, 5, 17, 30, 49, 1000] {
                    for limit in [1, 3, 1000] {
                        let now = Fixtures.time(offset)
                        #expect(
                            try repo.sessionsWithDueDeadline(at: now, limit: limit)
                                == memory.sessionsWithDueDeadline(at: now, limit: limit), "at +\(offset) limit \(limit)")
                    }
                }
            }
            var a = Fixtures.plainSession("a", conversation: "ca", channel: "web")
            a.inactivityDeadline = Fixtures.time(300)
            a.autoEndDeadline = Fixtures.time(100)  // earliest: 100
            var b = Fixtures.plainSession("b", conversation: "cb", channel: "web")
            b.inactivityDeadline = Fixtures.time(200)
            b.autoEndDeadline = Fixtures.time(5000)  // not due yet: key 200
            var c = Fixtures.plainSession("c", conversation: "cc", channel: "web")
            c.autoEndDeadline = Fixtures.time(200)  // ties with b: id order
            var d = Fixtures.plainSession("d", conversation: "cd", channel: "web")
            d.inactivityDeadline = Fixtures.time(1001)  // not due
            try store.write { repo throws in
                for session in [d, c, b, a] { try repo.insertSession(session) }
            }
            let due = try store.read { try $0.sessionsWithDueDeadline(at: Fixtures.time(1000), limit: 100).map(\.id) }
            #expect(due.filter { ["a", "b", "c", "d"].contains($0) } == ["a", "b", "c"])
            #expect(due.suffix(3) == ["a", "b", "c"])  // the populated ones are all due before +100
        }
    }

    /// Many sessions with both deadlines drawn from a small range (so many
    /// ties), paged the way a sweeper pages: always the reference's answer.
    @Test(arguments: StoreKind.allCases)
    func dueDeadlinesWithManyTiesMatchTheReference(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            var generator = SplitMix(seed: 42)
            var memory = InMemoryRepository()
            var sessions: [Session] = []
            for index in 0..<200 {
                var session = Fixtures.plainSession(String(format: "d%03d", (index * 71) % 200), conversation: "c\(index)", channel: "web")
                let roll = generator.next() % 4
                if roll != 0 { session.inactivityDeadline = Fixtures.time(Int64(generator.next() % 20)) }
                if roll != 1 { session.autoEndDeadline = Fixtures.time(Int64(generator.next() % 20)) }
                sessions.append(session)
            }
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                for session in sessions { try repo.insertSession(session) }
            }
            try memory.transaction { memory in
                try memory.insertChannel(Fixtures.plainChannel("web"))
                for session in sessions { try memory.insertSession(session) }
            }
            try store.read { repo throws in
                for offset: Int64 in [0, 3, 10, 19, 25] {
                    for limit in [1, 2, 7, 50, 500] {
                        let now = Fixtures.time(offset)
                        #expect(
                            try repo.sessionsWithDueDeadline(at: now, limit: limit).map(\.id)
                                == memory.sessionsWithDueDeadline(at: now, limit: limit).map(\.id),
                            "at +\(offset) limit \(limit)")
                    }
                }
            }
        }
    }

    // MARK: Events

    @Test(arguments: StoreKind.allCases)
    func eventsGetGaplessSequencesAndMonotonicCursors(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                for id in ["s1", "s2", "s3"] {
                    try repo.insertSession(Fixtures.plainSession(id, conversation: "c-\(id)", channel: "web"))
                }
            }
            #expect(try store.latestEventCursor() == 0)
            var appended: [Event] = []
            for round in 0..<5 {
                for id in ["s1", "s2", "s3"] where !(id == "s3" && round > 2) {
                    let event = try store.write { try $0.appendEvent(Fixtures.event(id, at: Int64(round))) }
                    appended.append(event)
                }
            }
            // Several in one transaction, too.
            appended += try store.write { repo throws in
                [try repo.appendEvent(Fixtures.event("s3", at: 9)), try repo.appendEvent(Fixtures.event("s3", at: 9))]
            }
            #expect(appended.map(\.cursor) == Array(1...Int64(appended.count)))
            for id in ["s1", "s2", "s3"] {
                let sequences = appended.filter { $0.sessionId == id }.map(\.sequence)
                #expect(sequences == Array(1...Int64(sequences.count)))
            }
            try store.read { repo throws in
                #expect(try repo.events(afterCursor: 0, limit: 1000) == appended)
                #expect(try repo.events(afterCursor: 4, limit: 3) == Array(appended[4..<7]))
                #expect(try repo.events(afterCursor: 1000, limit: 3) == [])
                #expect(try repo.events(afterCursor: 0, limit: -1) == [])
                #expect(try repo.events(sessionId: "s1", afterSequence: 0, limit: 100) == appended.filter { $0.sessionId == "s1" })
                #expect(try repo.events(sessionId: "s1", afterSequence: 2, limit: 2).map(\.sequence) == [3, 4])
                #expect(try repo.events(sessionId: "s3", afterSequence: 5, limit: 2) == [])
                #expect(try repo.events(sessionId: "ghost", afterSequence: 0, limit: 2) == [])
            }
            #expect(try store.latestEventCursor() == Int64(appended.count))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func eventsRoundTripEveryFieldAndRefuseAMissingSession(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let full = Event(
                cursor: 999, sessionId: "s1", sequence: 999, time: Fixtures.time(5), actor: .rep("r1"), from: .active,
                to: .inactive, repId: "r1", reason: .markedInactive)
            let sparse = Event(
                sessionId: "s1", time: Fixtures.time(6), actor: .system, from: nil, to: .waiting, repId: nil,
                reason: .created)
            let stored = try store.write { repo throws -> [Event] in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                return [try repo.appendEvent(full), try repo.appendEvent(sparse)]
            }
            var expectedFull = full
            expectedFull.cursor = 1
            expectedFull.sequence = 1
            var expectedSparse = sparse
            expectedSparse.cursor = 2
            expectedSparse.sequence = 2
            #expect(stored == [expectedFull, expectedSparse])
            #expect(try store.read { try $0.events(sessionId: "s1", afterSequence: 0, limit: 10) } == stored)
            let message = expectDomainError(.notFound) { try store.write { _ = try $0.appendEvent(Fixtures.event("ghost")) } }
            #expect(message == "session ghost does not exist")
        }
    }

    // MARK: Messages

    @Test(arguments: StoreKind.allCases)
    func messagesRoundTripAndRefuseDuplicates(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let customer = Message(messageId: "m-1", channelId: "web", sessionId: "s1", sender: .customer, text: "Bonjour 👋\nline two 'quoted' \\ $1",
                time: Fixtures.time(1))
            let rep = Message(messageId: "m-2", channelId: "web", sessionId: "s1", sender: .rep, text: "", time: Fixtures.time(2))
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                try repo.insertMessage(customer)
                try repo.insertMessage(rep)
            }
            #expect(try store.read { try $0.message(channelId: "web", id: "m-1") } == customer)
            #expect(try store.read { try $0.message(channelId: "web", id: "m-2") } == rep)
            #expect(try store.read { try $0.message(channelId: "web", id: "m-3") } == nil)
            #expect(expectDomainError(.alreadyExists) { try store.write { try $0.insertMessage(rep) } }
                == "message m-2 already exists on channel web")
            var orphan = rep
            orphan.messageId = "m-4"
            orphan.sessionId = "ghost"
            #expect(expectDomainError(.notFound) { try store.write { try $0.insertMessage(orphan) } }
                == "session ghost does not exist")
        }
    }

    @Test("message ids are scoped per channel: the same id on two channels is two messages", arguments: StoreKind.allCases)
    func messageIdsArePerChannel(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let onWeb = Message(messageId: "m-1", channelId: "web", sessionId: "s1", sender: .customer, text: "a", time: Fixtures.time(1))
            let onSMS = Message(messageId: "m-1", channelId: "sms", sessionId: "s2", sender: .customer, text: "b", time: Fixtures.time(2))
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertChannel(Fixtures.plainChannel("sms"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                try repo.insertSession(Fixtures.plainSession("s2", conversation: "c2", channel: "sms"))
                try repo.insertMessage(onWeb)
                try repo.insertMessage(onSMS)
            }
            #expect(try store.read { try $0.message(channelId: "web", id: "m-1") } == onWeb)
            #expect(try store.read { try $0.message(channelId: "sms", id: "m-1") } == onSMS)
            #expect(try store.read { try $0.message(channelId: "other", id: "m-1") } == nil)
            #expect(expectDomainError(.alreadyExists) { try store.write { try $0.insertMessage(onSMS) } }
                == "message m-1 already exists on channel sms")
        }
    }

    @Test("settings: absent until set, replaced by a later set, kept across a reopen", arguments: StoreKind.allCases)
    func settingsPersist(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            #expect(try store.read { try $0.setting("k") } == nil)
            try store.write { try $0.setSetting("k", 5) }
            try store.write { try $0.setSetting("k", -7) }
            try store.write { try $0.setSetting("other", 1) }
            #expect(try store.read { try $0.setting("k") } == -7)
            #expect(try store.read { try $0.setting("other") } == 1)
        }
    }

    // MARK: Tokens

    static let adminToken = APIToken(hash: [0xAA, 0x01], role: .admin, name: "ops", createdAt: Fixtures.time(1))
    static let repToken = APIToken(
        hash: [0x00, 0xFF, 0x10], role: .rep, repId: "r1", name: "Ana's desk", createdAt: Fixtures.time(2),
        revokedAt: Fixtures.time(3))
    static let serviceToken = APIToken(
        hash: Array(repeating: 7, count: 32), role: .service, name: "whatsapp-bridge", createdAt: Fixtures.time(2))

    @Test(arguments: StoreKind.allCases)
    func tokensRoundTripRevokeAndRefuseInvalidOnes(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            for token in [Self.serviceToken, Self.repToken, Self.adminToken] { try store.insertToken(token) }
            #expect(try store.token(hash: [0xAA, 0x01]) == Self.adminToken)
            #expect(try store.token(hash: [0x00, 0xFF, 0x10]) == Self.repToken)
            #expect(try store.token(hash: Array(repeating: 7, count: 32)) == Self.serviceToken)
            #expect(try store.token(hash: [0xAA]) == nil)
            // Ordered by creation time, then name ("A" < "w").
            #expect(try store.listTokens() == [Self.adminToken, Self.repToken, Self.serviceToken])

            let revoked = try store.revokeToken(hash: Self.adminToken.hash, at: Fixtures.time(50))
            #expect(revoked.revokedAt == Fixtures.time(50) && !revoked.isActive)
            #expect(try store.revokeToken(hash: Self.adminToken.hash, at: Fixtures.time(60)).revokedAt == Fixtures.time(50))
            #expect(try store.token(hash: Self.adminToken.hash) == revoked)
            #expect(expectDomainError(.notFound) { _ = try store.revokeToken(hash: [9, 9], at: Fixtures.time(1)) }
                == "no such token")

            var duplicate = Self.serviceToken
            duplicate.hash = Self.adminToken.hash
            duplicate.name = "copy"
            #expect(expectDomainError(.alreadyExists) { try store.insertToken(duplicate) }
                == "a token with the same secret already exists (new token copy)")
            var repWithoutRep = Self.repToken
            repWithoutRep.hash = [5]
            repWithoutRep.repId = nil
            expectDomainError(.invalidArgument) { try store.insertToken(repWithoutRep) }
            var adminWithRep = Self.adminToken
            adminWithRep.hash = [1]
            adminWithRep.repId = "r1"
            expectDomainError(.invalidArgument) { try store.insertToken(adminWithRep) }
            var empty = Self.adminToken
            empty.hash = []
            expectDomainError(.invalidArgument) { try store.insertToken(empty) }
            #expect(try store.listTokens().count == 3)
        }
    }

    // MARK: Transactions

    @Test(arguments: StoreKind.allCases)
    func aThrowingWriteLeavesNothingBehind(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            do {
                try store.write { repo throws in
                    try repo.insertChannel(Fixtures.plainChannel("web"))
                    try repo.upsertRep(Fixtures.rep("r1"))
                    try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                    _ = try repo.appendEvent(Fixtures.event("s1"))
                    try repo.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "x", time: Fixtures.t0))
                    throw Boom()
                }
                Issue.record("the write should have thrown")
            } catch is Boom {
                // expected
            }
            // A domain error halfway through rolls back the first half too.
            expectDomainError(.alreadyExists) {
                try store.write { repo throws in
                    try repo.insertChannel(Fixtures.plainChannel("sms"))
                    try repo.insertChannel(Fixtures.plainChannel("sms"))
                }
            }
            try store.read { repo throws in
                #expect(try repo.channels(after: nil, limit: 10).isEmpty)
                #expect(try repo.reps(after: nil, limit: 10).isEmpty)
                #expect(try repo.session(id: "s1") == nil)
                #expect(try repo.events(afterCursor: 0, limit: 10).isEmpty)
                #expect(try repo.message(channelId: "web", id: "m1") == nil)
            }
            // The store is fully usable afterwards, and the rolled-back cursor is not skipped.
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            let event = try store.write { try $0.appendEvent(Fixtures.event("s1")) }
            #expect(event.cursor == 1 && event.sequence == 1)
        }
    }

    /// A caller may catch a `DomainError` inside its write and carry on: a
    /// refusal must not poison the transaction (in PostgreSQL an SQL error would).
    @Test(arguments: StoreKind.allCases)
    func aRefusalCaughtInsideAWriteLeavesTheTransactionUsable(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            func refused(_ code: DomainError.Code, _ body: () throws -> Void) {
                expectDomainError(code, body)
            }
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                refused(.alreadyExists) { try repo.insertChannel(Fixtures.plainChannel("web")) }
                refused(.notFound) { try repo.updateChannel(Fixtures.plainChannel("ghost")) }
                refused(.alreadyExists) { try repo.insertSession(Fixtures.plainSession("s1", conversation: "c7", channel: "web")) }
                refused(.alreadyExists) { try repo.insertSession(Fixtures.plainSession("s2", conversation: "c1", channel: "web")) }
                refused(.notFound) { try repo.insertSession(Fixtures.plainSession("s3", conversation: "c3", channel: "ghost")) }
                refused(.aborted) { try repo.updateSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web")) }
                refused(.notFound) { _ = try repo.appendEvent(Fixtures.event("ghost")) }
                try repo.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .rep, text: "a", time: Fixtures.t0))
                refused(.alreadyExists) {
                    try repo.insertMessage(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .rep, text: "b", time: Fixtures.t0))
                }
                // Still usable: these commit.
                try repo.insertChannel(Fixtures.plainChannel("sms"))
                _ = try repo.appendEvent(Fixtures.event("s1"))
            }
            try store.read { repo throws in
                #expect(try repo.channels(after: nil, limit: 10).map(\.id) == ["sms", "web"])
                #expect(try repo.sessions(matching: SessionFilter(), after: nil, limit: 10).map(\.id) == ["s1"])
                #expect(try repo.events(afterCursor: 0, limit: 10).map(\.cursor) == [1])
                #expect(try repo.message(channelId: "web", id: "m1")?.text == "a")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentWritesSerializeAndAllCommit(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.upsertRep(Fixtures.rep("counter", used: 0))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            let writers = 6
            let writesEach = 10
            let failures = Failures()
            runOnThreads(writers) { worker in
                for step in 0..<writesEach {
                    do {
                        try store.write { repo throws in
                            // Read-modify-write: lost updates would show if writes interleaved.
                            var rep = try #require(try repo.rep(id: "counter"))
                            rep.usedCapacity += 1
                            try repo.upsertRep(rep)
                            _ = try repo.appendEvent(Fixtures.event("s1", at: Int64(worker * 100 + step)))
                        }
                        _ = try store.read { try $0.events(afterCursor: 0, limit: 5) }
                    } catch {
                        failures.add("\(error)")
                    }
                }
            }
            #expect(failures.all.isEmpty)
            let total = writers * writesEach
            try store.read { repo throws in
                #expect(try repo.rep(id: "counter")?.usedCapacity == total)
                let events = try repo.events(afterCursor: 0, limit: 10_000)
                #expect(events.map(\.cursor) == Array(1...Int64(total)))
                #expect(events.map(\.sequence) == Array(1...Int64(total)))
            }
        }
    }

    // Not .owner: a state owner runs reads and writes one after the other, never side by side.
    @Test(arguments: [StoreKind.sqlite, .postgres])
    func readsSeeOneSnapshotWhileAWriteCommits(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            try store.write { try $0.insertChannel(Fixtures.plainChannel("a")) }
            let writeDone = DispatchSemaphore(value: 0)
            try store.read { repo throws in
                #expect(try repo.channels(after: nil, limit: 10).map(\.id) == ["a"])
                DispatchQueue.global().async {
                    try? store.write { try $0.insertChannel(Fixtures.plainChannel("b")) }
                    writeDone.signal()
                }
                writeDone.wait()
                // Still the snapshot taken at the first read of this transaction.
                #expect(try repo.channels(after: nil, limit: 10).map(\.id) == ["a"])
            }
            #expect(try store.read { try $0.channels(after: nil, limit: 10).map(\.id) } == ["a", "b"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func misuseIsReportedClearly(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let inRead = #expect(throws: (any Error).self) {
                try store.read { repo throws in
                    var writable = repo
                    try writable.insertChannel(Fixtures.plainChannel("a"))
                }
            }
            #expect("\(inRead.map { "\($0)" } ?? "")".contains("insertChannel is a write"))
            let nested = #expect(throws: (any Error).self) { try store.write { _ in try store.write { _ in } } }
            #expect("\(nested.map { "\($0)" } ?? "")".contains("was called inside a write closure"))
            // A state owner runs one command at a time on its own queue: a read cannot run inside
            // a write, and the repository is the partition itself (there is no transaction to end).
            if kind == .owner || kind == .journaled { return }
            // A read inside a write works and sees the state before the write.
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("a"))
                #expect(try store.read { try $0.channel(id: "a") } == nil)
            }
            #expect(try store.read { try $0.channel(id: "a") } != nil)
            // A repository is dead once its closure returned.
            let escaped = try store.write { $0 }
            let afterward = #expect(throws: (any Error).self) { _ = try escaped.channel(id: "a") }
            #expect("\(afterward.map { "\($0)" } ?? "")".contains("after its transaction ended"))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func dataSurvivesReopening(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            let session = Fixtures.fullSession("s1", conversation: "c1", channel: "web", rep: "r1")
            let token = APIToken(hash: [1, 2, 3], role: .admin, name: "ops", createdAt: Fixtures.t0)
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.fullChannel("web"))
                try repo.upsertRep(Fixtures.rep("r1"))
                try repo.insertSession(session)
                _ = try repo.appendEvent(Fixtures.event("s1"))
            }
            try store.insertToken(token)
            let reopened = try store.reopened()
            try reopened.read { repo throws in
                #expect(try repo.channel(id: "web") == Fixtures.fullChannel("web"))
                #expect(try repo.rep(id: "r1") == Fixtures.rep("r1"))
                #expect(try repo.session(id: "s1") == session)
                #expect(try repo.events(afterCursor: 0, limit: 10).map(\.sequence) == [1])
            }
            #expect(try reopened.token(hash: [1, 2, 3]) == token)
            let next = try reopened.write { try $0.appendEvent(Fixtures.event("s1")) }
            #expect(next.cursor == 2 && next.sequence == 2)
        }
    }

    // MARK: The engine

    @Test(arguments: StoreKind.allCases)
    func lifecycleScenarioMatchesTheInMemoryRepository(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            var reference = ScenarioRunner(store: MemoryScenarioStore())
            try lifecycleScenario(&reference)
            var subject = ScenarioRunner(store: ContractScenarioStore(store: store))
            try lifecycleScenario(&subject)

            #expect(subject.log.count == reference.log.count)
            for (got, expected) in zip(subject.log, reference.log) {
                #expect(got == expected, "step \(expected.name)")
            }
            let expected = try RepositorySnapshot(reference.store.repository, messageIds: allMessageIds)
            let reopened = try store.reopened()
            let got = try reopened.read { try RepositorySnapshot($0, messageIds: allMessageIds) }
            #expect(got.channels == expected.channels)
            #expect(got.reps == expected.reps)
            #expect(got.sessions == expected.sessions)
            #expect(got.events == expected.events)
            #expect(got.messages == expected.messages)
            #expect(got.sessions.count >= 7 && got.events.count >= 20)
            #expect(try reopened.read { try CapacityAudit.violations(in: $0) } == [])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func racingWritersNeverBothWinOneTransition(kind: StoreKind) throws {
        try withContractStore(kind) { store in
            var engine = SessionEngine(ids: SequentialIDGenerator())
            let now = Fixtures.t0
            try store.write { repo throws in
                _ = try engine.createChannel(Channel(id: "web", type: .enhancedWebChatV2), by: admin, at: now, in: &repo)
                _ = try engine.createRep(
                    id: "r1", displayName: "Ana", capacity: 5, permissions: Set(Permission.allCases),
                    presence: .available, by: admin, at: now, in: &repo)
                _ = try engine.createSession(conversationId: "c1", channelId: "web", by: bridge, at: now, in: &repo)
            }
            let results = Failures()
            let frozen = engine
            runOnThreads(8) { _ in
                do {
                    _ = try store.write { repo throws in
                        try frozen.endSession(sessionId: "ses_000001", by: .rep("r1"), at: now, in: &repo)
                    }
                    results.add("won")
                } catch let error as DomainError {
                    results.add(error.code.rawValue)
                } catch {
                    results.add("storage: \(error)")
                }
            }
            #expect(results.all.filter { $0 == "won" }.count == 1)
            #expect(results.all.filter { $0 == "FAILED_PRECONDITION" }.count == 7)
            let events = try store.read { try $0.events(sessionId: "ses_000001", afterSequence: 0, limit: 10) }
            #expect(events.map(\.to) == [.waiting, .active, .ended])
            #expect(try store.read { try $0.rep(id: "r1")?.usedCapacity } == 0)
        }
    }
}
