import RPC
import SessionAPI
import SessionClient
import Testing

/// The rest of SPEC §2's lifecycle: routing order, presence, End Chat,
/// business-initiated sessions and conversations that outlive a session.
@Suite("Session lifecycle")
struct LifecycleScenarioTests {
    @Test("Routing: least-utilised rep first, ties to the one idle longest, FIFO queue, weights that fit")
    func routingOrder() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("heavy", .enhancedWhatsapp, weight: 3)
            try await d.createRep("a", capacity: 2, presence: .offline)
            try await d.createRep("b", capacity: 4, presence: .offline)
            try await d.setPresence("b", .available)
            try await d.advance(Millis.second)
            try await d.setPresence("a", .available)
            try await d.advance(Millis.second)

            func next(_ name: String, on channel: String = "web") async throws -> Session {
                let s = try await d.customerWrites(name, on: channel)
                try await d.advance(Millis.second)
                return s
            }
            let s1 = try await next("c1")
            #expect(s1.repId == "b", "both idle: b became available first")
            let s2 = try await next("c2")
            #expect(s2.repId == "a", "a at 0/2 is less utilised than b at 1/4")
            let s3 = try await next("c3")
            #expect(s3.repId == "b", "b at 1/4 is less utilised than a at 1/2")
            let s4 = try await next("c4")
            #expect(s4.repId == "a", "tie at 1/2: a has been idle longer")
            let s5 = try await next("c5")
            let s6 = try await next("c6")
            #expect(s5.repId == "b" && s6.repId == "b")
            let q7 = try await next("c7")
            let q8 = try await next("c8")
            #expect(q7.status == .waiting && q8.status == .waiting)
            #expect(q7.queuedAtMs < q8.queuedAtMs)

            try await d.end(s1.id)
            #expect(try await d.session(q7.id).repId == "b", "first queued, first routed")
            #expect(try await d.session(q8.id).status == .waiting)
            try await d.end(s2.id)
            #expect(try await d.session(q8.id).repId == "a")

            // Weight: a heavy session at the head of the queue does not block a lighter one behind it.
            let heavy = try await next("h1", on: "heavy")
            let light = try await next("l1")
            #expect(heavy.status == .waiting && light.status == .waiting)
            try await d.end(s3.id)
            #expect(try await d.session(light.id).repId == "b", "1 free unit: the light session fits")
            #expect(try await d.session(heavy.id).status == .waiting, "3 units needed")
            for s in [s5, s6, light] { try await d.end(s.id) }
            let placed = try await d.session(heavy.id)
            #expect(placed.status == .active && placed.repId == "b")
            let load = try await d.workload("b")
            #expect(load.used == 4, "q7 (1) + heavy (3)")
            #expect(Set(load.activeSessions.map(\.id)) == [q7.id, heavy.id])
        }
    }

    @Test("Presence: a rep going OFFLINE sends its ACTIVE sessions back to WAITING and they are re-routed")
    func offlineRequeuesActiveSessions() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV1)
            try await d.createRep("alice", capacity: 3)
            let alice = try await d.repClient("alice")
            let a1 = try await d.customerWrites("c1", on: "web")
            let a2 = try await d.customerWrites("c2", on: "web")
            let idle = try await d.customerWrites("c3", on: "web")
            try await d.markInactive(idle.id, via: alice)
            try await d.createRep("bob", capacity: 1, presence: .offline)
            try await d.setPresence("bob", .available)

            let offline = try await d.setPresence("alice", .offline, via: alice)
            #expect(offline.presence == .offline)
            #expect(offline.usedCapacity == 0)
            let moved = [try await d.session(a1.id), try await d.session(a2.id)]
            #expect(moved.filter { $0.status == .active && $0.repId == "bob" }.count == 1, "bob takes one")
            #expect(moved.filter { $0.status == .waiting && $0.repId == "" }.count == 1, "the other waits")
            for s in moved {
                let events = try await d.events(s.id)
                let requeue = try #require(events.first { $0.reason == .repWentOffline })
                #expect(requeue.fromStatus == .active && requeue.toStatus == .waiting)
                #expect(requeue.repId == "alice", "the event names the rep who went offline")
                #expect(requeue.actor?.kind == .actorRep && requeue.actor?.id == "alice")
            }
            let kept = try await d.session(idle.id)
            #expect(kept.status == .inactive && kept.repId == "alice", "INACTIVE sessions stay with the rep")
            #expect(try await d.workload("alice").used == 0)

            // Back AVAILABLE: the waiting one comes to alice.
            try await d.setPresence("alice", .available, via: alice)
            #expect(try await d.sessions(status: .waiting).isEmpty)
            #expect(try await d.workload("alice").activeSessions.count == 1)
        }
    }

    @Test("Presence: BUSY keeps its sessions but gets no new ones; a rep sets its own presence, an admin anyone's")
    func busyPresenceAndWhoMaySetIt() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice", capacity: 3)
            try await d.createRep("bob", capacity: 3, presence: .offline)
            let alice = try await d.repClient("alice")
            let service = try await d.service()
            let s = try await d.customerWrites("c1", on: "wa")
            #expect(try await d.setPresence("alice", .busy, via: alice).presence == .busy)
            #expect(try await d.session(s.id).repId == "alice")
            let waiting = try await d.customerWrites("c2", on: "wa")
            #expect(waiting.status == .waiting, "a BUSY rep gets no new sessions")
            try await d.setPresence("alice", .available, via: alice)
            #expect(try await d.session(waiting.id).repId == "alice", "becoming available routes at once")

            await expectRPCError(.permissionDenied, containing: ["alice", "bob"]) { try await d.setPresence("bob", .available, via: alice) }
            await expectRPCError(.permissionDenied, containing: ["SERVICE"]) { try await d.setPresence("bob", .available, via: service) }
            await expectRPCError(.invalidArgument) { try await d.setPresence("alice", .unspecified, via: alice) }
            #expect(try await d.setPresence("bob", .available).presence == .available, "an admin sets anyone's")
            var list = SessionsV1.ListRepsRequest()
            list.presence = .available
            #expect(Set(try await d.admin.reps.listReps(list).reps.map(\.id)) == ["alice", "bob"])
        }
    }

    @Test("End Chat: the owning rep, an admin or the customer's channel ends a session in any open status")
    func endChat() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 1, presence: .busy)
            let alice = try await d.repClient("alice")
            let bob = try await d.repClient("bob")
            let service = try await d.service()
            let active = try await d.customerWrites("c-active", on: "web")
            let waiting = try await d.customerWrites("c-waiting", on: "web")

            await expectRPCError(.permissionDenied, containing: ["bob"]) { try await d.end(active.id, via: bob) }
            let byRep = try await d.end(active.id, via: alice)
            #expect(byRep.status == .ended && byRep.endReason == .endedByRep)
            #expect(byRep.repId == "alice", "the last owner stays recorded")
            #expect(try await d.session(waiting.id).repId == "alice", "ending freed capacity and routing ran")

            try await d.markInactive(waiting.id, via: alice)
            let byAdmin = try await d.end(waiting.id)
            #expect(byAdmin.endReason == .endedByAdmin)
            #expect(byAdmin.autoEndDeadlineMs == 0)

            try await d.setPresence("alice", .busy, via: alice)
            let queued = try await d.customerWrites("c-queued", on: "web")
            #expect(queued.status == .waiting)
            let byCustomer = try await d.end(queued.id, via: service)
            #expect(byCustomer.endReason == .endedByCustomer)
            #expect(byCustomer.queuedAtMs == 0)

            var bi = SessionsV1.StartBusinessInitiatedRequest()
            bi.repId = "bob"
            bi.conversationId = "c-new"
            bi.channelId = "web"
            let new = try #require(try await bob.sessions.startBusinessInitiated(bi).session)
            #expect(try await d.end(new.id, via: bob).endReason == .endedByRep)

            await expectRPCError(.failedPrecondition, containing: ["ENDED"]) { try await d.end(active.id, via: alice) }
            await expectRPCError(.failedPrecondition, containing: ["ENDED"]) { try await d.end(queued.id) }
            for s in [active, waiting, queued, new] {
                let events = try await d.events(s.id)
                expectConsistentHistory(events)
                #expect(events.filter { $0.toStatus == .ended }.count == 1)
            }
        }
    }

    @Test("Business-initiated: NEW uses no capacity and becomes ACTIVE with that rep on the customer's reply")
    func businessInitiatedSession() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 1, presence: .busy)
            try await d.createRep("carol", capacity: 1, presence: .offline)
            let alice = try await d.repClient("alice")
            let service = try await d.service()

            var bi = SessionsV1.StartBusinessInitiatedRequest()
            bi.repId = "alice"
            bi.conversationId = "outbound-1"
            bi.channelId = "wa"
            bi.messageId = "out-msg-1"
            bi.text = "Your order has shipped"
            let new = try #require(try await alice.sessions.startBusinessInitiated(bi).session)
            #expect(new.status == .new)
            #expect(new.repId == "alice")
            let load = try await d.workload("alice")
            #expect(load.used == 0, "NEW uses no capacity")
            #expect(load.otherSessions.map(\.id) == [new.id])
            let created = try #require(try await d.events(new.id).first)
            #expect(created.fromStatus == .unspecified && created.toStatus == .new && created.reason == .businessInitiated)
            #expect(created.actor?.kind == .actorRep)
            // Follow-ups before the customer answers are allowed.
            #expect(try await d.repWrites(new.id, via: alice, text: "Reply here with questions").status == .new)

            let reply = try await d.customerWrites("outbound-1", on: "wa", text: "thanks!")
            #expect(reply.id == new.id)
            #expect(reply.status == .active && reply.repId == "alice")
            let last = try #require(try await d.events(new.id).last)
            #expect(last.fromStatus == .new && last.toStatus == .active && last.reason == .customerMessage)
            #expect(try await d.workload("alice").used == 1)

            // Started by a service for a busy rep: the reply routes it to whoever is available.
            var forBob = SessionsV1.StartBusinessInitiatedRequest()
            forBob.repId = "bob"
            forBob.conversationId = "outbound-2"
            forBob.channelId = "wa"
            let bobs = try #require(try await service.sessions.startBusinessInitiated(forBob).session)
            #expect(bobs.status == .new && bobs.repId == "bob")
            try await d.setPresence("carol", .available)
            let routed = try await d.customerWrites("outbound-2", on: "wa")
            #expect(routed.status == .active && routed.repId == "carol")
            #expect(transitions(try await d.events(bobs.id)).suffix(2) == ["NEW->WAITING:CUSTOMER_MESSAGE", "WAITING->ACTIVE:ROUTED"])

            // A retry of the call (same first message id) changes nothing and answers replayed.
            let eventsBefore = try await d.events(new.id)
            let retried = try await alice.sessions.startBusinessInitiated(bi)
            #expect(retried.replayed)
            #expect(retried.session?.id == new.id)
            #expect(try await d.events(new.id) == eventsBefore)
            var changed = bi
            changed.text = "Your order is delayed"
            await expectRPCError(.alreadyExists, containing: ["out-msg-1"]) { try await alice.sessions.startBusinessInitiated(changed) }

            // Refusals: for another rep, on a conversation with an open session, for a rep without permissions.
            var other = bi
            other.repId = "bob"
            other.conversationId = "outbound-3"
            other.messageId = ""
            other.text = ""
            await expectRPCError(.permissionDenied, containing: ["alice", "bob"]) { try await alice.sessions.startBusinessInitiated(other) }
            var busyConversation = bi
            busyConversation.messageId = ""
            busyConversation.text = ""
            await expectRPCError(.failedPrecondition, containing: ["ACTIVE"]) { try await alice.sessions.startBusinessInitiated(busyConversation) }
            try await d.createRep("nobody", permissions: [])
            var unlicensed = other
            unlicensed.repId = "nobody"
            await expectRPCError(.permissionDenied, containing: ["MESSAGING_AGENT"]) { try await service.sessions.startBusinessInitiated(unlicensed) }
        }
    }

    @Test("A customer message after ENDED opens a new session on the same conversation")
    func messageAfterEndOpensNewSession() async throws {
        try await withDaemon { d in
            try await d.createChannel("sms", .enhancedSms)
            try await d.createRep("alice", capacity: 2)
            let service = try await d.service()
            let first = try await d.customerWrites("conv-42", on: "sms")
            let ended = try await d.end(first.id, via: service)
            #expect(ended.endReason == .endedByCustomer)

            let second = try await d.customerWrites("conv-42", on: "sms", text: "one more question")
            #expect(second.id != first.id)
            #expect(second.conversationId == "conv-42")
            #expect(second.status == .active && second.repId == "alice")
            let created = try #require(try await d.events(second.id).first)
            #expect(created.fromStatus == .unspecified && created.reason == .customerMessage)
            #expect(try await d.session(first.id).status == .ended, "the ended session stays ended")
            let both = try await d.sessions(conversationId: "conv-42")
            #expect(Set(both.map(\.id)) == [first.id, second.id])

            // Without a channel id, a message finds the conversation's open session;
            // opening a new one needs the channel.
            var bare = SessionsV1.PostCustomerMessageRequest()
            bare.conversationId = "conv-42"
            bare.messageId = "bare-1"
            bare.text = "no channel given"
            let found = try await service.sessions.postCustomerMessage(bare)
            #expect(found.session?.id == second.id && !found.replayed)
            #expect(try await service.sessions.postCustomerMessage(bare).replayed)
            try await d.end(second.id, via: service)
            bare.messageId = "bare-2"
            await expectRPCError(.invalidArgument, containing: ["has no open session", "channel id"]) { try await service.sessions.postCustomerMessage(bare) }
            bare.messageId = "bare-1"
            let retriedAfterEnd = try await service.sessions.postCustomerMessage(bare)
            #expect(retriedAfterEnd.replayed && retriedAfterEnd.session?.id == second.id, "a retry still finds where it went")
            try await d.customerWrites("conv-42", on: "sms", text: "third time")

            // A message id already used on another conversation is a different message, never a replay of it.
            let other = try await d.customerWrites("conv-43", on: "sms")
            var reused = SessionsV1.PostCustomerMessageRequest()
            reused.conversationId = "conv-43"
            reused.messageId = "bare-1"
            reused.text = "no channel given"
            await expectRPCError(.alreadyExists, containing: ["bare-1"]) { try await service.sessions.postCustomerMessage(reused) }
            reused.channelId = "sms"
            await expectRPCError(.alreadyExists, containing: ["bare-1"]) { try await service.sessions.postCustomerMessage(reused) }
            reused.channelId = ""
            reused.conversationId = "conv-44"
            // Message ids are scoped per channel: with no channel and no session, there is nothing to replay.
            await expectRPCError(.invalidArgument, containing: ["has no open session", "channel id"]) {
                try await service.sessions.postCustomerMessage(reused)
            }
            #expect(try await d.session(other.id).version == other.version)
            #expect(try await d.sessions(conversationId: "conv-44").isEmpty)

            // An open session pins the conversation to its channel.
            try await d.createChannel("wa", .enhancedWhatsapp)
            await expectRPCError(.failedPrecondition, containing: ["sms"]) { try await d.customerWrites("conv-42", on: "wa") }
        }
    }
}

/// Reads and configuration that the scenarios above lean on.
@Suite("Listing and configuration")
struct ListingScenarioTests {
    @Test("ListSessions filters by status, rep, channel and conversation, and pages with its token")
    func listSessionsFilters() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice", capacity: 3)
            try await d.createRep("bob", capacity: 1, presence: .offline)
            let alice = try await d.repClient("alice")
            var ids: [String: String] = [:]
            for (conversation, channel) in [("w1", "web"), ("w2", "web"), ("a1", "wa"), ("w3", "web"), ("a2", "wa")] {
                ids[conversation] = try await d.customerWrites(conversation, on: channel).id
            }
            try await d.markInactive(ids["w1"]!, via: alice)
            try await d.end(ids["w2"]!)

            #expect(Set(try await d.sessions(status: .active).map(\.id)) == [ids["a1"]!, ids["w3"]!, ids["a2"]!])
            #expect(try await d.sessions(status: .inactive).map(\.id) == [ids["w1"]!])
            #expect(try await d.sessions(status: .ended).map(\.id) == [ids["w2"]!])
            #expect(try await d.sessions(repId: "bob").isEmpty)
            #expect(try await d.sessions(repId: "alice").count == 5)
            #expect(try await d.sessions(conversationId: "a2").map(\.id) == [ids["a2"]!])
            var byChannel = SessionsV1.ListSessionsRequest()
            byChannel.channelId = "wa"
            #expect(Set(try await d.admin.sessions.listSessions(byChannel).sessions.map(\.id)) == [ids["a1"]!, ids["a2"]!])
            var combined = SessionsV1.ListSessionsRequest()
            combined.channelId = "web"
            combined.status = .active
            #expect(try await alice.sessions.listSessions(combined).sessions.map(\.id) == [ids["w3"]!])

            // Paging: two at a time, in id order, every session once.
            var seen: [String] = []
            var page = SessionsV1.ListSessionsRequest()
            page.pageSize = 2
            repeat {
                let r = try await d.admin.sessions.listSessions(page)
                #expect(r.sessions.count <= 2)
                seen += r.sessions.map(\.id)
                page.pageToken = r.nextPageToken
            } while !page.pageToken.isEmpty
            #expect(seen == ids.values.sorted())
            page.pageSize = -1
            page.pageToken = ""
            await expectRPCError(.invalidArgument) { try await d.admin.sessions.listSessions(page) }
        }
    }

    @Test("Reps: capacity is 1 to 100; raising it routes waiting sessions, lowering it below the used units only stops new ones")
    func repCapacity() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            for (i, capacity) in [Int32(0), 101, -1].enumerated() {
                await expectRPCError(.invalidArgument, containing: ["capacity"]) { try await d.createRep("bad-\(i)", capacity: capacity) }
            }
            try await d.createRep("alice", capacity: 1)
            await expectRPCError(.alreadyExists, containing: ["alice"]) { try await d.createRep("alice", capacity: 1) }
            let s1 = try await d.customerWrites("c1", on: "web")
            let s2 = try await d.customerWrites("c2", on: "web")
            #expect(s2.status == .waiting)

            func setCapacity(_ capacity: Int32) async throws -> Rep {
                var rep = Rep()
                rep.id = "alice"
                rep.capacity = capacity
                var r = SessionsV1.RepRequest()
                r.rep = rep
                return try #require(try await d.admin.reps.updateRep(r).rep)
            }
            let raised = try await setCapacity(3)
            #expect(raised.capacity == 3)
            #expect(raised.displayName == "Rep alice", "an empty display name keeps the current one")
            #expect(try await d.session(s2.id).repId == "alice", "more capacity routes at once")
            let s3 = try await d.customerWrites("c3", on: "web")
            #expect(s3.repId == "alice")

            let lowered = try await setCapacity(1)
            #expect(lowered.usedCapacity == 3)
            #expect(try await d.workload("alice").free == -2)
            #expect(try await d.session(s1.id).status == .active, "lowering keeps the sessions it has")
            let s4 = try await d.customerWrites("c4", on: "web")
            #expect(s4.status == .waiting, "no new sessions while over capacity")
            for s in [s1, s2, s3] { try await d.end(s.id) }
            #expect(try await d.session(s4.id).repId == "alice")
            await expectRPCError(.invalidArgument, containing: ["capacity"]) { try await setCapacity(101) }
            await expectRPCError(.notFound, containing: ["ghost"]) {
                var r = SessionsV1.GetRepRequest()
                r.repId = "ghost"
                return try await d.admin.reps.getRep(r)
            }
        }
    }

    @Test("Tokens: REP tokens name an existing rep; WhoAmI reports the role; ListTokens never shows secrets")
    func tokens() async throws {
        try await withDaemon { d in
            try await d.createRep("alice")
            var forGhost = SessionsV1.IssueTokenRequest()
            forGhost.name = "ghost-desktop"
            forGhost.role = .rep
            forGhost.repId = "ghost"
            await expectRPCError(.notFound, containing: ["ghost"]) { try await d.admin.tokens.issueToken(forGhost) }
            forGhost.repId = ""
            await expectRPCError(.invalidArgument, containing: ["rep_id"]) { try await d.admin.tokens.issueToken(forGhost) }
            var serviceWithRep = SessionsV1.IssueTokenRequest()
            serviceWithRep.name = "bridge"
            serviceWithRep.role = .service
            serviceWithRep.repId = "alice"
            await expectRPCError(.invalidArgument) { try await d.admin.tokens.issueToken(serviceWithRep) }
            var noRole = SessionsV1.IssueTokenRequest()
            noRole.name = "nobody"
            await expectRPCError(.invalidArgument, containing: ["role"]) { try await d.admin.tokens.issueToken(noRole) }

            var rep = SessionsV1.IssueTokenRequest()
            rep.name = "alice-desktop"
            rep.role = .rep
            rep.repId = "alice"
            let issued = try await d.admin.tokens.issueToken(rep)
            #expect(!issued.token.isEmpty)
            let me = try await d.client(token: issued.token).tokens.whoAmI(.init())
            #expect(me.role == .rep && me.repId == "alice" && me.name == "alice-desktop")
            #expect(me.id == issued.info?.id)
            let admin = try await d.admin.tokens.whoAmI(.init())
            #expect(admin.role == .admin)
            let listed = try await d.admin.tokens.listTokens(.init()).tokens
            #expect(Set(listed.map(\.name)) == ["bootstrap-admin", "alice-desktop"])
            #expect(listed.allSatisfy { $0.id.count == 12 && $0.id != issued.token }, "ids are short and not the secret")
        }
    }

    @Test("message ids are scoped per channel: the same provider id on two channels opens two sessions; a repeat on one is a replay")
    func messageIdsPerChannel() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("sms", .enhancedSms)
            try await d.createRep("alice", capacity: 5)
            let service = try await d.service()
            let onWeb = try await d.customerWrites("conv-web", on: "web", messageId: "provider-1", text: "hi")
            let onSMS = try await d.customerWrites("conv-sms", on: "sms", messageId: "provider-1", text: "hi")
            #expect(onWeb.id != onSMS.id)
            #expect(onWeb.channelId == "web" && onSMS.channelId == "sms")
            // The same id again on one channel: a replay, nothing changes.
            var again = SessionsV1.PostCustomerMessageRequest()
            again.conversationId = "conv-sms"
            again.channelId = "sms"
            again.messageId = "provider-1"
            again.text = "hi"
            let replay = try await service.sessions.postCustomerMessage(again)
            #expect(replay.replayed && replay.session?.id == onSMS.id)
            #expect(try await d.session(onSMS.id).version == onSMS.version)
            // ... and reused for something else on that channel: ALREADY_EXISTS as before.
            again.text = "different"
            await expectRPCError(.alreadyExists, containing: ["provider-1"]) { try await service.sessions.postCustomerMessage(again) }
        }
    }
}
