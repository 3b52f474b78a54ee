import RPC
import SessionAPI
import SessionClient
import Synchronization
import Testing

/// Idempotent retries and racing callers over several connections.
@Suite("Retries and races")
struct ConcurrencyScenarioTests {
    @Test("Idempotent retries: CreateSession twice for a conversation returns the same session (replayed)")
    func createSessionIsIdempotent() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice", capacity: 5)
            let service = try await d.service()
            var create = SessionsV1.CreateSessionRequest()
            create.conversationId = "conv-1"
            create.channelId = "web"
            let first = try await service.sessions.createSession(create)
            #expect(!first.replayed)
            let created = try #require(first.session)
            let eventsBefore = try await d.events(created.id)
            let retry = try await service.sessions.createSession(create)
            #expect(retry.replayed)
            let current = try await d.session(created.id)
            #expect(retry.session == current)
            #expect(retry.session?.version == created.version, "nothing changed")
            let eventsAfter = try await d.events(created.id)
            #expect(eventsAfter == eventsBefore)
            #expect(try await d.sessions(conversationId: "conv-1").count == 1)

            // With a first message: the retry after the session ended still finds it, and opens nothing.
            var withMessage = SessionsV1.CreateSessionRequest()
            withMessage.conversationId = "conv-2"
            withMessage.channelId = "web"
            withMessage.messageId = "first-message-2"
            withMessage.text = "hi"
            let opened = try #require(try await service.sessions.createSession(withMessage).session)
            try await d.end(opened.id, via: service)
            let replay = try await service.sessions.createSession(withMessage)
            #expect(replay.replayed)
            #expect(replay.session?.id == opened.id)
            #expect(replay.session?.status == .ended)
            #expect(try await d.sessions(conversationId: "conv-2").count == 1)

            // The same conversation on another channel while open is a conflict, not a new session.
            var elsewhere = create
            elsewhere.channelId = "wa"
            await expectRPCError(.failedPrecondition, containing: ["web"]) { try await service.sessions.createSession(elsewhere) }

            // Concurrent retries of one create: one session.
            var burst = SessionsV1.CreateSessionRequest()
            burst.conversationId = "conv-burst"
            burst.channelId = "web"
            let request = burst
            let results = await race(10, clients: [service, d.admin]) { c, _ in try await c.sessions.createSession(request) }
            let responses = try results.map { try $0.get() }
            #expect(Set(responses.compactMap { $0.session?.id }).count == 1)
            #expect(responses.filter { !$0.replayed }.count == 1)
        }
    }

    @Test("Calls pipelined on one connection share journal batches: a call with others behind it never writes its batch alone on the connection's thread")
    func pipelinedCallsShareBatches() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 100)
            let service = try await d.service()
            let owner = try #require(d.daemon.backend.partitions.first?.owner)
            let before = owner.journalStats.batches
            let calls = 32
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<calls {
                    group.addTask { try await d.customerWrites("pipelined-\(i)", on: "web", via: service) }
                }
                try await group.waitForAll()
            }
            let batches = owner.journalStats.batches - before
            // One connection, 32 calls sent at once: each leading its own batch (what a leader commit
            // that ignored the calls queued behind it did) would make 32 batches; grouped, a handful.
            #expect(batches < calls / 2, "\(batches) batches for \(calls) pipelined calls")
        }
    }

    @Test("Idempotent retries: PostCustomerMessage with the same message_id twice changes nothing the second time")
    func postCustomerMessageIsIdempotent() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 5)
            let alice = try await d.repClient("alice")
            let service = try await d.service()
            func post(_ id: String, _ text: String = "hello") async throws -> SessionsV1.SessionResponse {
                var r = SessionsV1.PostCustomerMessageRequest()
                r.conversationId = "conv-1"
                r.channelId = "web"
                r.messageId = id
                r.text = text
                return try await service.sessions.postCustomerMessage(r)
            }
            let first = try await post("m1")
            #expect(!first.replayed)
            let s = try #require(first.session)
            let retry = try await post("m1")
            #expect(retry.replayed)
            #expect(retry.session == s)

            // A message that brought the customer back, retried after the rep marked the session inactive again.
            try await d.markInactive(s.id, via: alice)
            let back = try await post("m2", "I'm back")
            #expect(!back.replayed)
            #expect(back.session?.status == .active)
            let inactiveAgain = try await d.markInactive(s.id, via: alice)
            let eventsBefore = try await d.events(s.id)
            let retried = try await post("m2", "I'm back")
            #expect(retried.replayed)
            let after = try await d.session(s.id)
            #expect(after.status == .inactive, "the retry did not bring the customer back a second time")
            #expect(after.version == inactiveAgain.version)
            let eventsAfter = try await d.events(s.id)
            #expect(eventsAfter == eventsBefore)

            // After the session ended, the retry of its message opens nothing.
            try await d.end(s.id)
            #expect(try await post("m1").replayed)
            #expect(try await d.sessions(conversationId: "conv-1").count == 1)

            // The same id with other content is a different message: refused.
            await expectRPCError(.alreadyExists, containing: ["m1"]) { try await post("m1", "something else") }
        }
    }

    @Test("Racing customer messages on one new conversation open exactly one session")
    func racingMessagesOpenOneSession() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 5)
            let token = try await d.issueToken(.service, name: "integration")
            let connections = try (0..<4).map { _ in try d.client(token: token) }
            let results = await race(12, clients: connections) { c, i in
                var r = SessionsV1.PostCustomerMessageRequest()
                r.conversationId = "burst"
                r.channelId = "web"
                r.messageId = "burst-\(i)"
                r.text = "message \(i)"
                return try await c.sessions.postCustomerMessage(r)
            }
            let responses = try results.map { try $0.get() }
            let ids = Set(responses.compactMap { $0.session?.id })
            #expect(ids.count == 1, "every message went to one session")
            #expect(responses.allSatisfy { !$0.replayed }, "distinct messages are not replays")
            let sessions = try await d.sessions(conversationId: "burst")
            #expect(sessions.count == 1)
            let events = try await d.events(try #require(ids.first))
            expectConsistentHistory(events)
            #expect(transitions(events) == ["SESSION_STATUS_UNSPECIFIED->WAITING:CUSTOMER_MESSAGE", "WAITING->ACTIVE:ROUTED"])
            #expect(try await d.workload("alice").used == 1)
        }
    }

    @Test("Racing transitions: of 20 concurrent MarkInactive/End calls on one session exactly one wins each transition")
    func racingTransitions() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 5)
            let token = try await d.issueToken(.rep, repId: "alice")
            var connections: [SessionClient] = []
            for _ in 0..<3 { connections.append(try d.client(token: token)) }
            for _ in 0..<2 { connections.append(try d.client(token: TestDaemon.adminSecret)) }

            func markInactive(_ id: String) -> @Sendable (SessionClient, Int) async throws -> SessionsV1.SessionResponse {
                var r = SessionsV1.MarkInactiveRequest()
                r.sessionId = id
                let request = r
                return { c, _ in try await c.sessions.markInactive(request) }
            }
            func end(_ id: String) -> @Sendable (SessionClient, Int) async throws -> SessionsV1.SessionResponse {
                var r = SessionsV1.EndSessionRequest()
                r.sessionId = id
                let request = r
                return { c, _ in try await c.sessions.endSession(request) }
            }
            func outcome(_ results: [Result<SessionsV1.SessionResponse, any Error>], loserNames status: String) -> Int {
                var wins = 0
                for result in results {
                    switch result {
                    case .success: wins += 1
                    case .failure(let error as RPCError):
                        #expect(error.code == .failedPrecondition, "\(error)")
                        #expect(error.message.contains(status), "\(error)")
                    case .failure(let error):
                        Issue.record("unexpected \(error)")
                    }
                }
                return wins
            }

            let s = try await d.customerWrites("contested", on: "web")
            #expect(outcome(await race(20, clients: connections, markInactive(s.id)), loserNames: "INACTIVE") == 1)
            #expect(outcome(await race(20, clients: connections, end(s.id)), loserNames: "ENDED") == 1)
            let events = try await d.events(s.id)
            expectConsistentHistory(events)
            #expect(transitions(events) == [
                "SESSION_STATUS_UNSPECIFIED->WAITING:CUSTOMER_MESSAGE", "WAITING->ACTIVE:ROUTED",
                "ACTIVE->INACTIVE:MARKED_INACTIVE", "INACTIVE->ENDED:\(events.last?.reason.protoName ?? "")",
            ])

            // Mixed: 10 MarkInactive and 10 End at once on a fresh ACTIVE session.
            for round in 0..<3 {
                let m = try await d.customerWrites("mixed-\(round)", on: "web")
                let mark = markInactive(m.id)
                let stop = end(m.id)
                let results = await race(20, clients: connections) { c, i in
                    try await (i.isMultiple(of: 2) ? mark : stop)(c, i)
                }
                var markWins = 0
                var endWins = 0
                for (i, result) in results.enumerated() {
                    switch result {
                    case .success: if i.isMultiple(of: 2) { markWins += 1 } else { endWins += 1 }
                    case .failure(let error as RPCError): #expect(error.code == .failedPrecondition, "\(error)")
                    case .failure(let error): Issue.record("unexpected \(error)")
                    }
                }
                #expect(endWins == 1)
                #expect(markWins <= 1)
                let history = try await d.events(m.id)
                expectConsistentHistory(history)
                #expect(history.count == 3 + markWins, "one event per won transition")
                #expect(history.filter { $0.toStatus == .ended }.count == 1)
                #expect(history.filter { $0.toStatus == .inactive }.count == markWins)
                #expect(history.last?.toStatus == .ended)
            }
            let load = try await d.workload("alice")
            #expect(load.used == 0 && load.activeSessions.isEmpty)
        }
    }

    @Test("Racing customers for few rep slots never overdraw capacity, and no session is ACTIVE with two reps")
    func racingForCapacity() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("wa", .enhancedWhatsapp, weight: 2)
            let capacities: [String: Int32] = ["r1": 1, "r2": 2, "r3": 3]
            for (id, capacity) in capacities.sorted(by: { $0.key < $1.key }) {
                try await d.createRep(id, capacity: capacity)
            }
            let weights = ["web": 1, "wa": 2]
            let serviceToken = try await d.issueToken(.service, name: "integration")
            let connections = try (0..<8).map { _ in try d.client(token: serviceToken) }

            // Watches every rep's workload while the race runs.
            let violations = Locked<[String]>([])
            let running = Locked(true)
            let admin = d.admin
            let poller = Task {
                var polls = 0
                while running.withLock({ $0 }) {
                    for (id, capacity) in capacities {
                        var r = SessionsV1.GetRepRequest()
                        r.repId = id
                        guard let load = try? await admin.reps.getWorkload(r) else { continue }
                        polls += 1
                        let held = load.activeSessions.reduce(0) { $0 + (weights[$1.channelId] ?? 0) }
                        if load.used > capacity || Int(load.used) != held || load.rep?.usedCapacity != load.used {
                            violations.withLock { $0.append("\(id): used \(load.used) of \(capacity), sessions hold \(held)") }
                        }
                    }
                }
                return polls
            }

            func customers(_ range: Range<Int>) async -> [Result<SessionsV1.SessionResponse, any Error>] {
                await race(range.count, clients: connections) { c, i in
                    var r = SessionsV1.PostCustomerMessageRequest()
                    r.conversationId = "crowd-\(range.lowerBound + i)"
                    r.channelId = (range.lowerBound + i).isMultiple(of: 3) ? "wa" : "web"
                    r.messageId = "crowd-msg-\(range.lowerBound + i)"
                    r.text = "hello"
                    return try await c.sessions.postCustomerMessage(r)
                }
            }
            for result in await customers(0..<40) { _ = try result.get() }

            // Churn: end the active sessions while more customers arrive and a rep flaps offline.
            let active = try await d.sessions(status: .active)
            async let ended = race(active.count, clients: [d.admin] + connections) { c, i in
                var r = SessionsV1.EndSessionRequest()
                r.sessionId = active[i].id
                return try await c.sessions.endSession(r)
            }
            async let more = customers(40..<60)
            async let flap: Void = flapPresence(d, "r2")
            for result in await ended { _ = try result.get() }
            for result in await more { _ = try result.get() }
            await flap
            running.withLock { $0 = false }
            let polls = await poller.value
            #expect(polls > 0)
            #expect(violations.withLock { $0 }.isEmpty, "\(violations.withLock { $0 })")

            // The final state: every ACTIVE session is in exactly its rep's workload.
            let all = try await d.sessions()
            let activeNow = all.filter { $0.status == .active }
            var inWorkloads: [String: String] = [:]
            for (id, capacity) in capacities {
                let load = try await d.workload(id)
                #expect(load.used <= capacity)
                #expect(Int(load.used) == load.activeSessions.reduce(0) { $0 + weights[$1.channelId]! })
                for s in load.activeSessions {
                    #expect(inWorkloads[s.id] == nil, "session \(s.id) is ACTIVE with two reps")
                    inWorkloads[s.id] = id
                }
            }
            #expect(Set(inWorkloads.keys) == Set(activeNow.map(\.id)))
            for s in activeNow { #expect(inWorkloads[s.id] == s.repId) }
            #expect(activeNow.reduce(0) { $0 + weights[$1.channelId]! } <= 6)

            // Replay the whole event log in commit (cursor) order: capacity was never overdrawn.
            var expected = 0
            for s in all { expected += try await d.events(s.id).count }
            let log = try await collect(d.admin.events.watchEvents(.init()), count: expected, seconds: 20)
            #expect(log.count == expected)
            let channelOf = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.channelId) })
            var used: [String: Int] = [:]
            var owner: [String: String] = [:]
            for e in log {
                let w = weights[channelOf[e.sessionId] ?? ""] ?? 0
                if e.fromStatus == .active {
                    #expect(owner[e.sessionId] == e.repId, "cursor \(e.cursor): leaves ACTIVE from its owner")
                    owner[e.sessionId] = nil
                    used[e.repId, default: 0] -= w
                    #expect(used[e.repId, default: 0] >= 0)
                }
                if e.toStatus == .active {
                    #expect(owner[e.sessionId] == nil, "cursor \(e.cursor): session \(e.sessionId) ACTIVE twice")
                    owner[e.sessionId] = e.repId
                    used[e.repId, default: 0] += w
                    #expect(used[e.repId, default: 0] <= Int(capacities[e.repId] ?? 0), "cursor \(e.cursor): \(e.repId) overdrawn")
                }
            }
        }
    }
}

/// Takes a rep offline and back (errors are the race's business, not this helper's).
func flapPresence(_ d: TestDaemon, _ repId: String) async {
    _ = try? await d.setPresence(repId, .offline)
    _ = try? await d.setPresence(repId, .available)
}

/// Runs `n` calls at once, spread over `clients` (so over several
/// connections), and returns their results in call order.
func race<T: Sendable>(
    _ n: Int, clients: [SessionClient], _ call: @escaping @Sendable (SessionClient, Int) async throws -> T
) async -> [Result<T, any Error>] {
    await withTaskGroup(of: (Int, Result<T, any Error>).self) { group in
        for i in 0..<n {
            let client = clients[i % clients.count]
            group.addTask {
                do { return (i, .success(try await call(client, i))) } catch { return (i, .failure(error)) }
            }
        }
        var results = [Result<T, any Error>?](repeating: nil, count: n)
        for await (i, r) in group { results[i] = r }
        return results.map { $0! }
    }
}
