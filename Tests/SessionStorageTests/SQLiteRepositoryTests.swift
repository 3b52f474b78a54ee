import SessionCore
import Testing

@testable import SessionStorage

/// Every `SessionRepository` method of `SQLiteRepository`, against a real file.
@Suite struct SQLiteRepositoryTests {
    // MARK: Channels

    @Test func channelsRoundTripEveryField() throws {
        try withStore { store, _ in
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
        }
    }

    @Test func channelConstraintsBecomeDomainErrors() throws {
        try withStore { store, _ in
            try store.write { try $0.insertChannel(Fixtures.fullChannel("web-eu")) }
            let duplicate = expectDomainError(.alreadyExists) {
                try store.write { try $0.insertChannel(Fixtures.plainChannel("web-eu")) }
            }
            #expect(duplicate == "channel web-eu already exists")
            let missing = expectDomainError(.notFound) {
                try store.write { try $0.updateChannel(Fixtures.plainChannel("ghost")) }
            }
            #expect(missing == "channel ghost does not exist")
            #expect(try store.read { try $0.channel(id: "web-eu") } == Fixtures.fullChannel("web-eu"))
        }
    }

    @Test func channelsPageInIdOrder() throws {
        try withStore { store, _ in
            let ids = ["b", "a", "d", "c", "e"]
            try store.write { repo in for id in ids { try repo.insertChannel(Fixtures.plainChannel(id)) } }
            try store.read { repo throws in
                #expect(try repo.channels(after: nil, limit: 10).map(\.id) == ["a", "b", "c", "d", "e"])
                #expect(try repo.channels(after: nil, limit: 2).map(\.id) == ["a", "b"])
                #expect(try repo.channels(after: "b", limit: 2).map(\.id) == ["c", "d"])
                #expect(try repo.channels(after: "e", limit: 2).map(\.id) == [])
                #expect(try repo.channels(after: nil, limit: 0).isEmpty)
                #expect(try repo.channels(after: nil, limit: -1).isEmpty)  // not "no limit"
            }
        }
    }

    // MARK: Reps

    @Test func repsRoundTripEveryFieldAndUpsert() throws {
        try withStore { store, _ in
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
                updated.displayName = "Renamed"
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

    @Test func availableRepsAndRepPages() throws {
        try withStore { store, _ in
            try store.write { repo throws in
                try repo.upsertRep(Fixtures.rep("c", presence: .available))
                try repo.upsertRep(Fixtures.rep("a", presence: .available))
                try repo.upsertRep(Fixtures.rep("b", presence: .busy))
                try repo.upsertRep(Fixtures.rep("d", presence: .offline))
            }
            try store.read { repo throws in
                #expect(try repo.availableReps().map(\.id) == ["a", "c"])
                #expect(try repo.reps(after: nil, limit: 3).map(\.id) == ["a", "b", "c"])
                #expect(try repo.reps(after: "c", limit: 3).map(\.id) == ["d"])
            }
        }
    }

    // MARK: Sessions

    @Test func sessionsRoundTripEveryField() throws {
        try withStore { store, _ in
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
            var cleared = Session(
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
            cleared.version = 10
        }
    }

    @Test func oneOpenSessionPerConversation() throws {
        try withStore { store, _ in
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
        }
    }

    @Test func sessionForeignKeysBecomeNotFound() throws {
        try withStore { store, _ in
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
        }
    }

    @Test func updateSessionChecksVersionExistenceAndConversation() throws {
        try withStore { store, _ in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
            }
            var next = Fixtures.plainSession("s1", conversation: "c1", channel: "web")
            next.version = 2
            try store.write { try $0.updateSession(next) }

            let stale = expectDomainError(.aborted) { try store.write { try $0.updateSession(next) } }
            #expect(stale?.contains("stored version 2, update expected 1") == true)
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
            expectDomainError(.invalidArgument) { try store.write { try $0.updateSession(moved) } }
            #expect(try store.read { try $0.session(id: "s1") } == next)
        }
    }

    /// A set of sessions spread over statuses, reps, channels, queue times and deadlines, stored in both
    /// the SQLite repository and the reference in-memory one.
    static func populate(_ store: SQLiteStore) throws -> InMemoryRepository {
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
            // Queue times with ties (several sessions queued in the same millisecond) and one
            // WAITING session without queuedAt, which falls back on updatedAt.
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

    @Test func sessionQueriesMatchTheReferenceRepository() throws {
        try withStore { store, _ in
            let memory = try Self.populate(store)
            try store.read { repo throws in
                // sessions(matching:after:limit:) for every filter combination.
                for status in [nil] + SessionStatus.allCases.map(Optional.some) {
                    for repId in [nil, "r1", "r2", "zz"] {
                        for channelId in [nil, "web", "sms"] {
                            for conversationId in [nil, "c5", "c6"] {
                                let filter = SessionFilter(
                                    status: status, repId: repId, channelId: channelId, conversationId: conversationId)
                                for (after, limit) in [(nil, 1000), (nil, 3), ("s040", 5), ("s999", 5)] as [(String?, Int)] {
                                    #expect(
                                        try repo.sessions(matching: filter, after: after, limit: limit)
                                            == memory.sessions(matching: filter, after: after, limit: limit),
                                        "\(filter) after \(after ?? "-") limit \(limit)")
                                }
                            }
                        }
                    }
                }
                for repId in ["r1", "r2", "zz"] {
                    for status in SessionStatus.allCases {
                        #expect(try repo.sessions(repId: repId, status: status) == memory.sessions(repId: repId, status: status))
                    }
                }
            }
        }
    }

    @Test func waitingQueueIsFIFOWithIdTieBreakAndPages() throws {
        try withStore { store, _ in
            let memory = try Self.populate(store)
            try store.read { repo throws in
                let all = try repo.waitingSessions(after: nil, limit: 1000)
                #expect(all == memory.waitingSessions(after: nil, limit: 1000))
                #expect(all.count == 12)
                let keys = all.map { QueuePosition(queuedAt: $0.queuedAt ?? $0.updatedAt, sessionId: $0.id) }
                #expect(keys == keys.sorted())
                #expect(all.allSatisfy { $0.status == .waiting })
                // Paging with a keyset position walks the same order.
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

    @Test func dueDeadlinesMatchTheReferenceRepository() throws {
        try withStore { store, _ in
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
                #expect(try repo.sessionsWithDueDeadline(at: Fixtures.time(-1), limit: 10).isEmpty)
            }
        }
    }

    @Test func dueDeadlineOrderUsesTheEarliestDueDeadline() throws {
        try withStore { store, _ in
            var a = Fixtures.plainSession("a", conversation: "ca", channel: "web")
            a.inactivityDeadline = Fixtures.time(30)
            a.autoEndDeadline = Fixtures.time(10)  // earliest: 10
            var b = Fixtures.plainSession("b", conversation: "cb", channel: "web")
            b.inactivityDeadline = Fixtures.time(20)
            b.autoEndDeadline = Fixtures.time(500)  // not due yet: key 20
            var c = Fixtures.plainSession("c", conversation: "cc", channel: "web")
            c.autoEndDeadline = Fixtures.time(20)  // ties with b: id order
            var d = Fixtures.plainSession("d", conversation: "cd", channel: "web")
            d.inactivityDeadline = Fixtures.time(101)  // not due
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                for session in [d, c, b, a] { try repo.insertSession(session) }
            }
            #expect(try store.read { try $0.sessionsWithDueDeadline(at: Fixtures.time(100), limit: 10).map(\.id) }
                == ["a", "b", "c"])
            #expect(try store.read { try $0.sessionsWithDueDeadline(at: Fixtures.time(100), limit: 2).map(\.id) }
                == ["a", "b"])
            #expect(try store.read { try $0.sessionsWithDueDeadline(at: Fixtures.time(10), limit: 10).map(\.id) }
                == ["a"])
        }
    }

    // MARK: Events

    @Test func eventsGetGaplessSequencesAndMonotonicCursors() throws {
        try withStore { store, _ in
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                for id in ["s1", "s2", "s3"] {
                    try repo.insertSession(Fixtures.plainSession(id, conversation: "c-\(id)", channel: "web"))
                }
            }
            var appended: [Event] = []
            // Interleave sessions across many transactions.
            for round in 0..<5 {
                for id in ["s1", "s2", "s3"] where !(id == "s3" && round > 2) {
                    let event = try store.write { try $0.appendEvent(Fixtures.event(id, at: Int64(round))) }
                    appended.append(event)
                }
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
                #expect(try repo.events(sessionId: "s1", afterSequence: 0, limit: 100) == appended.filter { $0.sessionId == "s1" })
                #expect(try repo.events(sessionId: "s1", afterSequence: 2, limit: 2).map(\.sequence) == [3, 4])
                #expect(try repo.events(sessionId: "s3", afterSequence: 3, limit: 2) == [])
                #expect(try repo.events(sessionId: "ghost", afterSequence: 0, limit: 2) == [])
                #expect(try repo.latestEventCursor() == Int64(appended.count))
            }
        }
    }

    @Test func eventsRoundTripEveryField() throws {
        try withStore { store, _ in
            let full = Event(
                cursor: 999, sessionId: "s1", sequence: 999, time: Fixtures.time(5), actor: .rep("r1"), from: .active,
                to: .inactive, repId: "r1", reason: .markedInactive)
            let sparse = Event(
                sessionId: "s1", time: Fixtures.time(6), actor: .system, from: nil, to: .waiting, repId: nil,
                reason: .created)
            let stored = try store.write { repo -> [Event] in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                return [try repo.appendEvent(full), try repo.appendEvent(sparse)]
            }
            // The store assigns cursor and sequence, whatever the caller passed.
            var expectedFull = full
            expectedFull.cursor = 1
            expectedFull.sequence = 1
            var expectedSparse = sparse
            expectedSparse.cursor = 2
            expectedSparse.sequence = 2
            #expect(stored == [expectedFull, expectedSparse])
            #expect(try store.read { try $0.events(sessionId: "s1", afterSequence: 0, limit: 10) } == stored)
        }
    }

    @Test func eventOfAMissingSessionIsNotFound() throws {
        try withStore { store, _ in
            let message = expectDomainError(.notFound) { try store.write { _ = try $0.appendEvent(Fixtures.event("ghost")) } }
            #expect(message == "session ghost does not exist")
        }
    }

    // MARK: Messages

    @Test func messagesRoundTripAndRefuseDuplicates() throws {
        try withStore { store, _ in
            let customer = Message(
                messageId: "m-1", sessionId: "s1", sender: .customer, text: "Bonjour 👋\nline two", time: Fixtures.time(1))
            let rep = Message(messageId: "m-2", sessionId: "s1", sender: .rep, text: "x", time: Fixtures.time(2))
            try store.write { repo throws in
                try repo.insertChannel(Fixtures.plainChannel("web"))
                try repo.insertSession(Fixtures.plainSession("s1", conversation: "c1", channel: "web"))
                try repo.insertMessage(customer)
                try repo.insertMessage(rep)
            }
            #expect(try store.read { try $0.message(id: "m-1") } == customer)
            #expect(try store.read { try $0.message(id: "m-2") } == rep)
            #expect(try store.read { try $0.message(id: "m-3") } == nil)
            #expect(expectDomainError(.alreadyExists) { try store.write { try $0.insertMessage(rep) } }
                == "message m-2 already exists")
            var orphan = rep
            orphan.messageId = "m-4"
            orphan.sessionId = "ghost"
            #expect(expectDomainError(.notFound) { try store.write { try $0.insertMessage(orphan) } }
                == "session ghost does not exist")
        }
    }
}
