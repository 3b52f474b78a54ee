import RPC
import SessionAPI
import SessionClient
import Testing

/// Bearer tokens and roles: UNAUTHENTICATED for no or unknown tokens,
/// PERMISSION_DENIED for the wrong role or object.
@Suite("Authentication and authorization")
struct AuthScenarioTests {
    @Test("Auth: no token, an unknown, malformed or revoked token is UNAUTHENTICATED")
    func unauthenticatedCallers() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice")
            let s = try await d.customerWrites("conv-1", on: "web")
            var get = SessionsV1.GetSessionRequest()
            get.sessionId = s.id
            var create = SessionsV1.CreateSessionRequest()
            create.conversationId = "conv-2"
            create.channelId = "web"

            let anonymous = try d.client(token: nil)
            let unknown = try d.client(token: "sst_000000000000000000000000000000000000000000000000")
            for caller in [anonymous, unknown] {
                await expectRPCError(.unauthenticated) { try await caller.sessions.getSession(get) }
                await expectRPCError(.unauthenticated) { try await caller.sessions.createSession(create) }
                await expectRPCError(.unauthenticated) { try await caller.sessions.listSessions(.init()) }
                await expectRPCError(.unauthenticated) { try await caller.tokens.whoAmI(.init()) }
                await expectRPCError(.unauthenticated) { try await caller.clock.getTime(.init()) }
                await expectRPCError(.unauthenticated) { try await caller.tokens.issueToken(.init()) }
                await expectRPCError(.unauthenticated) { try await caller.channels.listChannels(.init()) }
                await expectRPCError(.unauthenticated) { try await collect(caller.events.watchEvents(.init()), count: 1) }
            }
            await expectRPCError(.unauthenticated, containing: ["Bearer"]) {
                try await anonymous.sessions.getSession(get, options: .init(metadata: ["authorization": .string("Basic YWRtaW46YWRtaW4=")]))
            }
            #expect(try await d.sessions().count == 1, "nothing was created")

            // A revoked token stops working at once.
            var issue = SessionsV1.IssueTokenRequest()
            issue.name = "short-lived"
            issue.role = .service
            let issued = try await d.admin.tokens.issueToken(issue)
            let holder = try d.client(token: issued.token)
            #expect(try await holder.tokens.whoAmI(.init()).name == "short-lived")
            var revoke = SessionsV1.RevokeTokenRequest()
            revoke.id = try #require(issued.info?.id)
            #expect(try await d.admin.tokens.revokeToken(revoke).revoked)
            await expectRPCError(.unauthenticated) { try await holder.sessions.getSession(get) }
        }
    }

    @Test("Auth: a rep token on someone else's session is PERMISSION_DENIED")
    func repTokenOnAnotherRepsSession() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 1, presence: .offline)
            let alice = try await d.repClient("alice")
            let bob = try await d.repClient("bob")
            let s = try await d.customerWrites("conv-1", on: "web")
            #expect(s.repId == "alice")
            #expect(try await d.session(s.id, via: alice).id == s.id, "the owner reads it")

            var get = SessionsV1.GetSessionRequest()
            get.sessionId = s.id
            var events = SessionsV1.ListEventsRequest()
            events.sessionId = s.id
            var watch = SessionsV1.WatchEventsRequest()
            watch.sessionId = s.id
            var listAlice = SessionsV1.ListSessionsRequest()
            listAlice.repId = "alice"
            var workload = SessionsV1.GetRepRequest()
            workload.repId = "alice"
            var create = SessionsV1.CreateSessionRequest()
            create.conversationId = "conv-by-rep"
            create.channelId = "web"

            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.sessions.getSession(get) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.events.listEvents(events) }
            await expectRPCError(.permissionDenied) { try await collect(bob.events.watchEvents(watch), count: 1) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await d.repWrites(s.id, via: bob) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await d.markInactive(s.id, via: bob) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await d.end(s.id, via: bob) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.sessions.listSessions(listAlice) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.reps.getWorkload(workload) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.reps.getRep(workload) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await d.setPresence("alice", .offline, via: bob) }
            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await bob.reps.listReps(.init()) }
            // Reps are not the customer's side.
            await expectRPCError(.permissionDenied) { try await bob.sessions.createSession(create) }
            await expectRPCError(.permissionDenied) { try await d.customerWrites("conv-1", on: "web", via: bob) }
            // Listing without a filter shows a rep only its own sessions.
            #expect(try await bob.sessions.listSessions(.init()).sessions.isEmpty)
            #expect(try await alice.sessions.listSessions(.init()).sessions.map(\.id) == [s.id])
            #expect(try await d.session(s.id).version == s.version, "nothing changed")
        }
    }

    @Test("Auth: a service token on admin RPCs (create channel, issue token, ...) is PERMISSION_DENIED")
    func serviceTokenOnAdminRPCs() async throws {
        try await withDaemon { d in
            let web = try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice")
            let service = try await d.service()
            let alice = try await d.repClient("alice")

            var channel = SessionsV1.ChannelRequest()
            var c = web
            c.id = "sneaky"
            channel.channel = c
            var update = SessionsV1.ChannelRequest()
            update.channel = web
            var rep = SessionsV1.RepRequest()
            var r = SessionsV1.Rep()
            r.id = "mallory"
            r.displayName = "Mallory"
            r.capacity = 100
            rep.rep = r
            var issue = SessionsV1.IssueTokenRequest()
            issue.name = "escalation"
            issue.role = .admin
            var grant = SessionsV1.PermissionChangeRequest()
            grant.repId = "alice"
            grant.permission = .messagingAgent
            var advance = SessionsV1.AdvanceClockRequest()
            advance.byMs = Millis.day
            var revoke = SessionsV1.RevokeTokenRequest()
            revoke.id = "whatever"

            for caller in [service, alice] {
                await expectRPCError(.permissionDenied) { try await caller.channels.createChannel(channel) }
                await expectRPCError(.permissionDenied) { try await caller.channels.updateChannel(update) }
                await expectRPCError(.permissionDenied) { try await caller.reps.createRep(rep) }
                await expectRPCError(.permissionDenied) { try await caller.reps.updateRep(rep) }
                await expectRPCError(.permissionDenied, containing: ["admin"]) { try await caller.tokens.issueToken(issue) }
                await expectRPCError(.permissionDenied) { try await caller.tokens.listTokens(.init()) }
                await expectRPCError(.permissionDenied) { try await caller.tokens.revokeToken(revoke) }
                await expectRPCError(.permissionDenied) { try await caller.permissions.grantPermission(grant) }
                await expectRPCError(.permissionDenied) { try await caller.permissions.revokePermission(grant) }
                await expectRPCError(.permissionDenied, containing: ["admin"]) { try await caller.clock.advanceClock(advance) }
            }
            #expect(try await d.admin.channels.listChannels(.init()).channels.map(\.id) == ["web"])
            #expect(try await d.admin.reps.listReps(.init()).reps.map(\.id) == ["alice"])
            #expect(try await d.now() == TestDaemon.clockStart, "the clock did not move")
            // Reads that are open to the service role still work.
            #expect(try await service.channels.listChannels(.init()).channels.count == 1)
            #expect(try await service.reps.listReps(.init()).reps.count == 1)
            #expect(try await service.tokens.whoAmI(.init()).role == .service)
        }
    }

    @Test("Auth: the health service stays open without a token")
    func healthIsOpen() async throws {
        try await withDaemon { d in
            let anonymous = try d.client(token: nil)
            var check = GrpcHealthV1.HealthCheckRequest()
            #expect(try await anonymous.health.check(check).status == .serving)
            check.service = SessionsV1.SessionService.serviceName
            #expect(try await anonymous.health.check(check).status == .serving)
            let garbage = try d.client(token: "not-a-token")
            #expect(try await garbage.health.check(check).status == .serving)
            let watched = check
            let first = try await deadline(5) {
                var iterator = anonymous.health.watch(watched).makeAsyncIterator()
                return try await iterator.next()
            }
            #expect(first?.status == .serving)
            check.service = "no.such.Service"
            await expectRPCError(.notFound) { try await anonymous.health.check(check) }
        }
    }

    @Test("Auth: AdvanceClock is refused with FAILED_PRECONDITION when the daemon runs without the test clock")
    func advanceClockNeedsTestClock() async throws {
        try await withDaemon(testClock: false) { d in
            let before = try await d.admin.clock.getTime(.init())
            #expect(!before.testClock)
            await expectRPCError(.failedPrecondition, containing: ["--test-clock"]) { try await d.advance(Millis.day) }
            #expect(try await d.now() == before.nowMs)
        }
        try await withDaemon(testClock: true) { d throws in
            #expect(try await d.admin.clock.getTime(.init()).testClock)
            await expectRPCError(.invalidArgument) { try await d.advance(0) }
            await expectRPCError(.invalidArgument) { try await d.advance(-5) }
            #expect(try await d.advance(Millis.hour) == TestDaemon.clockStart + Millis.hour)
        }
    }

    @Test("Bad arguments get a clear INVALID_ARGUMENT or NOT_FOUND and leave nothing behind")
    func badArguments() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice")
            let service = try await d.service()
            func post(_ conversation: String, _ channel: String, _ id: String, _ text: String) async throws -> SessionsV1.SessionResponse {
                var r = SessionsV1.PostCustomerMessageRequest()
                r.conversationId = conversation
                r.channelId = channel
                r.messageId = id
                r.text = text
                return try await service.sessions.postCustomerMessage(r)
            }
            await expectRPCError(.invalidArgument, containing: ["conversation id"]) { try await post("", "web", "m1", "hi") }
            await expectRPCError(.invalidArgument, containing: ["conversation id"]) { try await post("has space", "web", "m1", "hi") }
            await expectRPCError(.invalidArgument, containing: ["message id"]) { try await post("c1", "web", "", "hi") }
            await expectRPCError(.invalidArgument, containing: ["message id"]) { try await post("c1", "web", "tab\tid", "hi") }
            await expectRPCError(.invalidArgument, containing: ["text"]) { try await post("c1", "web", "m1", "") }
            await expectRPCError(.invalidArgument, containing: ["32768"]) { try await post("c1", "web", "m1", String(repeating: "x", count: 32_769)) }
            await expectRPCError(.invalidArgument, containing: ["channel id"]) { try await post("c1", "web eu", "m1", "hi") }
            await expectRPCError(.notFound, containing: ["nowhere"]) { try await post("c1", "nowhere", "m1", "hi") }
            var create = SessionsV1.CreateSessionRequest()
            create.conversationId = "c1"
            create.channelId = "nowhere"
            await expectRPCError(.notFound, containing: ["nowhere"]) { try await service.sessions.createSession(create) }
            await expectRPCError(.notFound, containing: ["ses_missing"]) { try await d.session("ses_missing") }
            await expectRPCError(.notFound, containing: ["ses_missing"]) { try await d.events("ses_missing") }
            await expectRPCError(.notFound, containing: ["ses_missing"]) { try await d.end("ses_missing") }
            await expectRPCError(.notFound, containing: ["ghost"]) { try await d.setPresence("ghost", .available) }
            await expectRPCError(.invalidArgument, containing: ["permission"]) {
                var r = SessionsV1.PermissionChangeRequest()
                r.repId = "alice"
                return try await d.admin.permissions.grantPermission(r)
            }
            #expect(try await d.sessions().isEmpty, "no refused call left a session behind")
            // The same ids are still free to use.
            let ok = try await post("c1", "web", "m1", "hi")
            #expect(!ok.replayed && ok.session?.status == .active)
            await expectRPCError(.invalidArgument, containing: ["negative"]) {
                var r = SessionsV1.ListEventsRequest()
                r.sessionId = ok.session?.id ?? ""
                r.limit = -1
                return try await d.admin.events.listEvents(r)
            }
        }
    }
}
