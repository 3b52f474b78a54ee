import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// Several server instances on one PostgreSQL database: two `PostgresStore`s
/// (as two `sessiond` processes would have) hammered at once from many
/// threads with engine operations, then the invariants checked on the final
/// state and on the event log.
@Suite struct PostgresMultiInstanceTests {
    static let web = Channel(
        id: "web", type: .enhancedWebChatV2, capacityModel: .tabBased, capacityWeight: 1,
        customerInactivityTimeout: .minutes(5), inactiveAutoEndAfter: .minutes(30))
    static let wa = Channel(
        id: "wa", type: .enhancedWhatsApp, capacityModel: .statusBased, capacityWeight: 2,
        inactiveAutoEndAfter: .minutes(30))

    /// Concurrent customer messages (two instances creating the same
    /// conversation's session), routing with many waiting sessions and few free
    /// slots, "mark inactive" racing a customer reply, then the inactivity and
    /// auto-end timers due at once on both instances, while a watcher on one
    /// instance follows the event feed.
    @Test func customersRoutingAndInactivityRaceAcrossTwoInstances() throws {
        let cluster = try Cluster(instances: 2)
        let reps = (1...4).map { "r\($0)" }
        cluster.run(on: 0, "setup") { engine, now, repo in
            _ = try engine.createChannel(Self.web, by: admin, at: now, in: &repo)
            _ = try engine.createChannel(Self.wa, by: admin, at: now, in: &repo)
            for id in reps {
                _ = try engine.createRep(
                    id: id, displayName: id, capacity: 2, permissions: Set(Permission.allCases), presence: .offline,
                    by: admin, at: now, in: &repo)
            }
        }
        #expect(cluster.refusals.all == [])
        #expect(cluster.failures.all == [])
        let watcher = EventWatcher(store: cluster.stores[1])
        watcher.start()

        // 1. Customers write on 30 conversations from 8 threads, alternating instances:
        //    every conversation is hit by several threads at once.
        runOnThreads(8) { thread in
            for step in 0..<12 {
                let conversation = (thread * 7 + step) % 30
                let message = IncomingMessage(messageId: "m1-\(thread)-\(step)", text: "hello \(step)")
                cluster.run(on: thread + step, "customer c\(conversation)") { engine, now, repo in
                    try engine.postCustomerMessage(
                        message, to: .conversation(id: "c\(conversation)", channelId: conversation % 2 == 0 ? "web" : "wa"),
                        by: bridge, at: now, in: &repo)
                }
            }
        }
        #expect(try cluster.stores[0].read { try $0.sessions(matching: SessionFilter(), after: nil, limit: 1000).count } == 30)

        // 2. The reps come online on both instances while more customers arrive:
        //    ~60 waiting sessions compete for 8 capacity units.
        runOnThreads(8) { thread in
            if thread < reps.count {
                cluster.run(on: thread, "presence \(reps[thread])") { engine, now, repo in
                    try engine.setPresence(repId: reps[thread], .available, by: .rep(reps[thread]), at: now, in: &repo)
                }
            }
            for step in 0..<5 {
                let conversation = 30 + (thread * 5 + step) % 30
                let message = IncomingMessage(messageId: "m2-\(thread)-\(step)", text: "queue me")
                cluster.run(on: thread + step + 1, "customer c\(conversation)") { engine, now, repo in
                    try engine.postCustomerMessage(
                        message, to: .conversation(id: "c\(conversation)", channelId: conversation % 2 == 0 ? "web" : "wa"),
                        by: bridge, at: now, in: &repo)
                }
            }
        }

        // 3. On every ACTIVE session, its rep marks it inactive on one instance
        //    while the customer replies on the other; and reps write on the rest
        //    (starting the inactivity countdown).
        let active = try cluster.stores[0].read { try $0.sessions(matching: SessionFilter(status: .active), after: nil, limit: 1000) }
        #expect(active.count >= 4)
        runOnThreads(active.count * 2) { index in
            let session = active[index / 2]
            if index % 2 == 0 {
                cluster.run(on: 0, "mark \(session.id) inactive") { engine, now, repo in
                    try engine.markInactive(sessionId: session.id, by: .rep(session.repId!), at: now, in: &repo)
                }
            } else {
                cluster.run(on: 1, "customer replies on \(session.id)") { engine, now, repo in
                    try engine.postCustomerMessage(
                        IncomingMessage(messageId: "m3-\(session.id)", text: "still here"), to: .session(id: session.id),
                        by: bridge, at: now, in: &repo)
                }
            }
        }
        // Every ACTIVE session's rep presses "Customer Inactive" on both
        // instances at once: it is marked inactive exactly once.
        let stillActive = try cluster.stores[0].read { try $0.sessions(matching: SessionFilter(status: .active), after: nil, limit: 1000) }
        let beforeMarks = try cluster.stores[0].read { try $0.latestEventCursor() }
        runOnThreads(stillActive.count * 2) { index in
            let session = stillActive[index / 2]
            cluster.run(on: index, "mark \(session.id) inactive twice") { engine, now, repo in
                try engine.markInactive(sessionId: session.id, by: .rep(session.repId!), at: now, in: &repo)
            }
        }
        let marks = try cluster.stores[0].read { try $0.events(afterCursor: beforeMarks, limit: 10_000) }
            .filter { $0.reason == .markedInactive }
        #expect(marks.map(\.sessionId).sorted() == stillActive.map(\.id).sorted())

        // Two messages from the customer of every INACTIVE session arrive at
        // once on both instances: the session returns exactly once.
        let inactive = try cluster.stores[0].read { try $0.sessions(matching: SessionFilter(status: .inactive), after: nil, limit: 1000) }
        #expect(inactive.count >= stillActive.count)
        let beforeReturns = try cluster.stores[0].read { try $0.latestEventCursor() }
        runOnThreads(inactive.count * 2) { index in
            let session = inactive[index / 2]
            cluster.run(on: index, "customer returns on \(session.id)") { engine, now, repo in
                try engine.postCustomerMessage(
                    IncomingMessage(messageId: "m5-\(index)", text: "back"), to: .session(id: session.id),
                    by: bridge, at: now, in: &repo)
            }
        }
        let returns = try cluster.stores[0].read { try $0.events(afterCursor: beforeReturns, limit: 10_000) }
            .filter { $0.reason == .customerReturned }
        #expect(returns.map(\.sessionId).sorted() == inactive.map(\.id).sorted())

        let nowActive = try cluster.stores[1].read { try $0.sessions(matching: SessionFilter(status: .active), after: nil, limit: 1000) }
        runOnThreads(nowActive.count) { index in
            let session = nowActive[index]
            cluster.run(on: index, "rep writes on \(session.id)") { engine, now, repo in
                try engine.postRepMessage(
                    IncomingMessage(messageId: "m4-\(session.id)", text: "anything else?"), sessionId: session.id,
                    by: .rep(session.repId!), at: now, in: &repo)
            }
        }

        // 4. Every countdown, then every auto-end, due at once on both instances.
        for advance in [Milliseconds.minutes(6), .minutes(31)] {
            cluster.clock.advance(advance)
            try cluster.fireAllDueTimers(threads: 6)
        }

        watcher.stop()
        let log = try cluster.checkInvariants(channels: [Self.web, Self.wa])
        #expect(watcher.seen == log, "the watcher on instance 2 missed or reordered events")
        #expect(watcher.problems == [])
        let reasons = Set(log.map(\.reason))
        for reason in [TransitionReason.routed, .markedInactive, .customerReturned, .customerInactivityTimeout, .autoEnded] {
            #expect(reasons.contains(reason), "the race produced no \(reason.rawValue)")
        }
    }

    /// 100 sessions with a timer due at the same instant (60 auto-ends, 40
    /// inactivity countdowns), fired by six sweepers on two instances: each
    /// timer fires exactly once.
    @Test func dueTimersFireExactlyOnceAcrossInstances() throws {
        let cluster = try Cluster(instances: 2)
        cluster.run(on: 0, "setup") { engine, now, repo in
            _ = try engine.createChannel(Self.web, by: admin, at: now, in: &repo)
            _ = try engine.createRep(
                id: "r1", displayName: "Ana", capacity: 100, permissions: Set(Permission.allCases), presence: .available,
                by: admin, at: now, in: &repo)
            for index in 0..<100 {
                let outcome = try engine.postCustomerMessage(
                    IncomingMessage(messageId: "m\(index)", text: "hi"), to: .conversation(id: "c\(index)", channelId: "web"),
                    by: bridge, at: now, in: &repo)
                // Every session starts its countdown; 60 are then marked inactive.
                _ = try engine.postRepMessage(
                    IncomingMessage(messageId: "r\(index)", text: "hello"), sessionId: outcome.session.id, by: .rep("r1"),
                    at: now, in: &repo)
                if index < 60 {
                    _ = try engine.markInactive(sessionId: outcome.session.id, by: .rep("r1"), at: now, in: &repo)
                }
            }
        }
        #expect(cluster.failures.all == [])
        let before = try cluster.stores[0].read { try $0.events(afterCursor: 0, limit: 100_000).count }
        // Both kinds come due at once (5 and 30 minutes): fire after 31.
        cluster.clock.advance(.minutes(31))
        let due = try cluster.stores[1].read { try $0.sessionsWithDueDeadline(at: cluster.clock.peek(), limit: 1000) }
        #expect(due.count == 100)
        try cluster.fireAllDueTimers(threads: 6, batch: 3)

        let log = try cluster.checkInvariants(channels: [Self.web])
        let fired = log.dropFirst(before)
        let autoEnded = Dictionary(grouping: fired.filter { $0.reason == .autoEnded }, by: \.sessionId)
        let timedOut = Dictionary(grouping: fired.filter { $0.reason == .customerInactivityTimeout }, by: \.sessionId)
        #expect(autoEnded.count == 60 && autoEnded.values.allSatisfy { $0.count == 1 })
        #expect(timedOut.count == 40 && timedOut.values.allSatisfy { $0.count == 1 })
        #expect(Set(autoEnded.keys).isDisjoint(with: timedOut.keys))
        #expect(fired.count == 100)
        #expect(try cluster.stores[0].read { try $0.sessionsWithDueDeadline(at: cluster.clock.peek(), limit: 10) } == [])
        #expect(try cluster.stores[0].read { try $0.rep(id: "r1")?.usedCapacity } == 0)
    }
}
