import RPC
import SessionAPI
import SessionClient
import Testing

/// History and events: every transition is recorded, listed per session and
/// watched live from a cursor.
@Suite("Events")
struct EventScenarioTests {
    /// Drives one session through every status: WAITING → ACTIVE → INACTIVE →
    /// (tab-based return) WAITING → ACTIVE → (rep offline) WAITING → ACTIVE →
    /// INACTIVE (timer) → ENDED (auto-end). Returns the session id.
    static func fullLifecycle(_ d: TestDaemon, conversation: String) async throws -> String {
        let alice = try await d.repClient("alice")
        let s = try await d.customerWrites(conversation, on: "web")
        try await d.markInactive(s.id, via: alice)
        try await d.customerWrites(conversation, on: "web", text: "back")
        let owner = try await d.session(s.id).repId
        try await d.setPresence(owner, .offline)
        try await d.setPresence(owner, .available)
        try await d.repWrites(s.id, via: try await d.repClient(try await d.session(s.id).repId))
        try await d.advance(5 * Millis.minute)
        try await d.advance(Millis.day)
        return s.id
    }

    static func setUp(_ d: TestDaemon) async throws {
        try await d.createChannel("web", .enhancedWebChatV2, inactivityTimeoutMs: 5 * Millis.minute)
        try await d.createRep("alice", capacity: 5)
        try await d.createRep("bob", capacity: 5, presence: .busy)
    }

    @Test("Events: every transition is listed per session with gapless sequences")
    func everyTransitionIsRecorded() async throws {
        try await withDaemon { d in
            try await Self.setUp(d)
            let id = try await Self.fullLifecycle(d, conversation: "conv-history")
            let events = try await d.events(id)
            expectConsistentHistory(events)
            #expect(transitions(events) == [
                "SESSION_STATUS_UNSPECIFIED->WAITING:CUSTOMER_MESSAGE",
                "WAITING->ACTIVE:ROUTED",
                "ACTIVE->INACTIVE:MARKED_INACTIVE",
                "INACTIVE->WAITING:CUSTOMER_RETURNED",
                "WAITING->ACTIVE:ROUTED",
                "ACTIVE->WAITING:REP_WENT_OFFLINE",
                "WAITING->ACTIVE:ROUTED",
                "ACTIVE->INACTIVE:CUSTOMER_INACTIVITY_TIMEOUT",
                "INACTIVE->ENDED:AUTO_ENDED",
            ])
            #expect(events.allSatisfy { $0.sessionId == id })
            #expect(events.map { $0.actor?.kind ?? .unspecified } == [
                .actorService, .actorSystem, .actorRep, .actorService, .actorSystem, .actorAdmin, .actorSystem, .actorSystem, .actorSystem,
            ])
            #expect(events[0].actor?.id == "channel-integration", "the actor id is the token's name")
            #expect(events[1].repId == "alice")
            #expect(events.last?.timeMs == TestDaemon.clockStart + 5 * Millis.minute + Millis.day)

            // Paging by sequence.
            var page = SessionsV1.ListEventsRequest()
            page.sessionId = id
            page.afterSequence = 3
            page.limit = 4
            #expect(try await d.admin.events.listEvents(page).events.map(\.sequence) == [4, 5, 6, 7])
            page.afterSequence = 7
            #expect(try await d.admin.events.listEvents(page).events.map(\.sequence) == [8, 9])
        }
    }

    @Test("Events: ListEvents and ListSessions use the page sizes the proto documents (0 means 1000 and 100)")
    func defaultPageSizes() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp, model: .statusBased)
            try await d.createRep("alice", capacity: 1)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("ping-pong", on: "wa")
            for _ in 0..<30 {
                try await d.markInactive(s.id, via: alice)
                try await d.customerWrites("ping-pong", on: "wa")
            }
            var r = SessionsV1.ListEventsRequest()
            r.sessionId = s.id
            let events = try await d.admin.events.listEvents(r).events
            #expect(events.count == 62, "limit 0 means 1000: all 62 events in one page")
            expectConsistentHistory(events)

            for i in 0..<110 {
                var c = SessionsV1.CreateSessionRequest()
                c.conversationId = "bulk-\(i)"
                c.channelId = "wa"
                _ = try await d.admin.sessions.createSession(c)
            }
            let page = try await d.admin.sessions.listSessions(.init())
            #expect(page.sessions.count == 100, "page_size 0 means 100")
            #expect(!page.nextPageToken.isEmpty)
            var rest = SessionsV1.ListSessionsRequest()
            rest.pageToken = page.nextPageToken
            let second = try await d.admin.sessions.listSessions(rest)
            #expect(second.sessions.count == 11)
            #expect(second.nextPageToken.isEmpty)
            #expect(Set(page.sessions.map(\.id)).isDisjoint(with: second.sessions.map(\.id)))
        }
    }

    @Test("Events: WatchEvents streams transitions live as they are committed")
    func watchStreamsLive() async throws {
        try await withDaemon { d in
            try await Self.setUp(d)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("live", on: "web")
            let existing = try await d.events(s.id)
            let cursor = try #require(existing.last?.cursor)

            // The global feed (service role) and the session's own feed (its rep).
            let watcher = try await d.serviceClient(name: "analytics")
            var global = SessionsV1.WatchEventsRequest()
            global.afterCursor = cursor
            let globalStream = watcher.events.watchEvents(global)
            var mine = SessionsV1.WatchEventsRequest()
            mine.sessionId = s.id
            let sessionStream = alice.events.watchEvents(mine)
            let globalTask = Task { try await collect(globalStream, count: 3) }
            let sessionTask = Task { try await collect(sessionStream, count: 5) }

            try await d.markInactive(s.id, via: alice)
            try await d.customerWrites("live", on: "web", text: "back")
            let live = try await globalTask.value
            #expect(transitions(live) == [
                "ACTIVE->INACTIVE:MARKED_INACTIVE", "INACTIVE->WAITING:CUSTOMER_RETURNED", "WAITING->ACTIVE:ROUTED",
            ])
            #expect(live.map(\.cursor) == live.map(\.cursor).sorted())
            #expect(live.first?.cursor ?? 0 > cursor)
            let perSession = try await sessionTask.value
            let history = try await d.events(s.id)
            #expect(perSession == history, "the session feed replays its history, then goes live")

            // Timer transitions are streamed too, and a session feed resumes from a cursor.
            let resumeAt = try #require(live.last?.cursor)
            global.afterCursor = resumeAt
            let timerStream = watcher.events.watchEvents(global)
            let timerTask = Task { try await collect(timerStream, count: 2) }
            try await d.markInactive(s.id, via: alice)
            try await d.advance(Millis.day)
            let timed = try await timerTask.value
            #expect(transitions(timed) == ["ACTIVE->INACTIVE:MARKED_INACTIVE", "INACTIVE->ENDED:AUTO_ENDED"])
            #expect(timed.last?.actor?.kind == .actorSystem)
            mine.afterCursor = resumeAt
            let resumed = try await collect(alice.events.watchEvents(mine), count: 2)
            #expect(resumed == timed)

            // Authorization: a rep may not watch the global feed nor another rep's session.
            let bob = try await d.repClient("bob")
            await expectRPCError(.permissionDenied) { try await collect(bob.events.watchEvents(.init()), count: 1) }
            await expectRPCError(.permissionDenied) { try await collect(bob.events.watchEvents(mine), count: 1) }
        }
    }

    @Test("Events: a watcher that reconnects with its last cursor misses nothing and repeats nothing")
    func watcherReconnectsWithCursor() async throws {
        try await withDaemon { d in
            try await Self.setUp(d)
            var ids = [try await Self.fullLifecycle(d, conversation: "before-1")]
            let token = try await d.issueToken(.service, name: "consumer")

            // First connection: reads part of the log, then drops.
            let first = try d.client(token: token)
            var request = SessionsV1.WatchEventsRequest()
            request.afterCursor = 0
            let seenFirst = try await collect(first.events.watchEvents(request), count: 5)
            first.close()
            let lastCursor = try #require(seenFirst.last?.cursor)

            // The world moves on while it is away.
            ids.append(try await Self.fullLifecycle(d, conversation: "while-away"))

            // Second connection resumes from the cursor, then keeps streaming live.
            let second = try d.client(token: token)
            request.afterCursor = lastCursor
            let stream = second.events.watchEvents(request)
            var logSoFar: [Event] = []
            for id in ids { logSoFar += try await d.events(id) }
            let backlog = logSoFar.filter { $0.cursor > lastCursor }.count
            let liveTask = Task { try await collect(stream, count: backlog + 2) }
            let late = try await d.customerWrites("after-reconnect", on: "web")
            ids.append(late.id)
            let seenSecond = try await liveTask.value

            var log: [Event] = []
            for id in ids { log += try await d.events(id) }
            log.sort { $0.cursor < $1.cursor }
            let seen = seenFirst + seenSecond
            #expect(seen.count == log.count)
            #expect(seen.map(\.cursor) == log.map(\.cursor), "in order, nothing missed, nothing repeated")
            #expect(seen == log)
            #expect(Set(seen.map(\.cursor)).count == seen.count)

            // Under load: reconnect three times while another task keeps committing transitions.
            let alice = try await d.repClient("alice")
            let startCursor = try #require(seen.last?.cursor)
            let producer = Task {
                var ids: [String] = []
                for i in 0..<10 {
                    let s = try await d.customerWrites("churn-\(i)", on: "web")
                    ids.append(s.id)
                    try await d.markInactive(s.id, via: alice)
                    try await d.end(s.id)
                }
                return ids
            }
            var cursor = startCursor
            var received: [Event] = []
            for _ in 0..<3 {
                let connection = try d.client(token: token)
                var resume = SessionsV1.WatchEventsRequest()
                resume.afterCursor = cursor
                let got = try await collect(connection.events.watchEvents(resume), count: 7)
                connection.close()
                received += got
                cursor = try #require(got.last?.cursor)
            }
            let churned = try await producer.value
            var produced: [Event] = []
            for id in churned { produced += try await d.events(id) }
            produced.sort { $0.cursor < $1.cursor }
            #expect(produced.count == 40)
            let last = try d.client(token: token)
            var rest = SessionsV1.WatchEventsRequest()
            rest.afterCursor = cursor
            received += try await collect(last.events.watchEvents(rest), count: produced.count - received.count)
            #expect(received.map(\.cursor) == produced.map(\.cursor), "three reconnects under load: nothing missed or repeated")
            #expect(received == produced)
        }
    }
}

/// Reads `count` events from a watch stream (at most 10 s), then cancels it.
func collect(_ stream: RPCResponseStream<Event>, count: Int, seconds: Double = 10) async throws -> [Event] {
    try await deadline(seconds) {
        var out: [Event] = []
        guard count > 0 else { return out }
        for try await e in stream {
            out.append(e)
            if out.count == count { break }
        }
        return out
    }
}
