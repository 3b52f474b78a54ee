import RPC
import SessionAPI
import SessionClient
import Testing

/// "Inactive sessions are automatically ended after approximately 24 hours.
/// In Enhanced Chat and Bring Your Own Channel, you can also set a time limit
/// for customer inactivity…" — driven through the test clock (AdvanceClock
/// fires due timers before it returns).
@Suite("Timers: customer inactivity and the 24-hour end")
struct TimerScenarioTests {
    @Test("Customer inactivity limit: only Enhanced Chat and Bring Your Own Channel accept customer_inactivity_timeout_ms")
    func inactivityTimeoutOnlyOnEnhancedChatAndBYOC() async throws {
        try await withDaemon { d in
            let allowed = Set(ChannelTypes.enhancedChat + [.bringYourOwnChannel])
            for type in ChannelTypes.all {
                let id = "t-\(type.protoName.lowercased())"
                if allowed.contains(type) {
                    let c = try await d.createChannel(id, type, inactivityTimeoutMs: 5 * Millis.minute)
                    #expect(c.customerInactivityTimeoutMs == 5 * Millis.minute, "\(type.protoName)")
                    var get = SessionsV1.GetChannelRequest()
                    get.channelId = id
                    #expect(try await d.admin.channels.getChannel(get).channel?.customerInactivityTimeoutMs == 5 * Millis.minute)
                } else {
                    await expectRPCError(.invalidArgument, containing: [type.protoName]) {
                        try await d.createChannel(id, type, inactivityTimeoutMs: 5 * Millis.minute)
                    }
                    // Without the limit the channel is fine, but an update cannot add one.
                    var c = try await d.createChannel(id, type)
                    #expect(c.customerInactivityTimeoutMs == 0)
                    c.customerInactivityTimeoutMs = 5 * Millis.minute
                    var update = SessionsV1.ChannelRequest()
                    update.channel = c
                    await expectRPCError(.invalidArgument, containing: [type.protoName]) {
                        try await d.admin.channels.updateChannel(update)
                    }
                }
            }
        }
    }

    @Test("Customer inactivity limit: the range of 1 minute to 24 hours is enforced")
    func inactivityTimeoutRange() async throws {
        try await withDaemon { d in
            let accepted: [Int64] = [Millis.minute, 90 * Millis.minute, Millis.day]
            let refused: [Int64] = [Millis.minute - 1, Millis.day + 1, -Millis.minute, 1]
            for (i, ms) in accepted.enumerated() {
                let c = try await d.createChannel("ok-\(i)", .bringYourOwnChannel, inactivityTimeoutMs: ms)
                #expect(c.customerInactivityTimeoutMs == ms)
            }
            for (i, ms) in refused.enumerated() {
                await expectRPCError(.invalidArgument, containing: ["1 minute", "24 hours"], "\(ms) ms") {
                    try await d.createChannel("bad-\(i)", .enhancedWebChatV2, inactivityTimeoutMs: ms)
                }
            }
            #expect(try await d.admin.channels.listChannels(.init()).channels.count == accepted.count, "refused channels were not stored")
        }
    }

    @Test("Channel settings: defaults (weight 1, 24 h auto-end, action visible) and the 10 minute to 7 day auto-end range")
    func channelDefaultsAndAutoEndRange() async throws {
        try await withDaemon { d in
            let c = try await d.createChannel("defaults", .enhancedSms)
            #expect(c.capacityWeight == 1)
            #expect(c.inactiveAutoEndAfterMs == Millis.day)
            #expect(c.customerInactivityTimeoutMs == 0)
            #expect(!c.inactivateActionHidden)
            #expect(c.capacityModel == .tabBased)
            let unspecified = try await d.createChannel("unspecified-model", .enhancedLine, model: .unspecified)
            #expect(unspecified.capacityModel == .tabBased, "UNSPECIFIED is treated as TAB_BASED")

            for (i, ms) in [10 * Millis.minute, 7 * Millis.day].enumerated() {
                #expect(try await d.createChannel("end-ok-\(i)", .enhancedLine, autoEndAfterMs: ms).inactiveAutoEndAfterMs == ms)
            }
            for (i, ms) in [10 * Millis.minute - 1, 7 * Millis.day + 1, -Millis.hour].enumerated() {
                await expectRPCError(.invalidArgument, containing: ["10 minutes", "7 days"]) {
                    try await d.createChannel("end-bad-\(i)", .enhancedLine, autoEndAfterMs: ms)
                }
            }
            for (i, w) in [Int32(-1), 101].enumerated() {
                await expectRPCError(.invalidArgument, containing: ["weight"]) {
                    try await d.createChannel("weight-bad-\(i)", .enhancedLine, weight: w)
                }
            }
            await expectRPCError(.invalidArgument, containing: ["channel type"]) { try await d.createChannel("no-type", .unspecified) }
            await expectRPCError(.alreadyExists, containing: ["defaults"]) { try await d.createChannel("defaults", .enhancedSms) }
            var retype = c
            retype.type = .enhancedLine
            var update = SessionsV1.ChannelRequest()
            update.channel = retype
            await expectRPCError(.failedPrecondition, containing: ["ENHANCED_SMS"]) { try await d.admin.channels.updateChannel(update) }
        }
    }

    @Test("Customer inactivity: the countdown starts at the rep's first message after the customer's, and expiry makes the session INACTIVE")
    func inactivityCountdownExpires() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2, inactivityTimeoutMs: 5 * Millis.minute)
            try await d.createRep("alice", capacity: 1)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("idle-customer", on: "web")
            let waiting = try await d.customerWrites("next-customer", on: "web")
            #expect(s.status == .active && s.inactivityDeadlineMs == 0, "no countdown before the rep answers")
            #expect(waiting.status == .waiting)

            try await d.advance(10 * Millis.minute)
            #expect(try await d.session(s.id).status == .active, "the countdown has not started: nothing expires")

            let t1 = try await d.now()
            let counting = try await d.repWrites(s.id, via: alice)
            #expect(counting.inactivityDeadlineMs == t1 + 5 * Millis.minute)
            try await d.advance(2 * Millis.minute)
            let later = try await d.repWrites(s.id, via: alice, text: "are you still there?")
            #expect(later.inactivityDeadlineMs == t1 + 5 * Millis.minute, "later rep messages do not restart it")

            try await d.advance(3 * Millis.minute - 1)
            #expect(try await d.session(s.id).status == .active, "1 ms before the limit")
            let expiry = try await d.advance(1)
            let inactive = try await d.session(s.id)
            #expect(inactive.status == .inactive)
            #expect(inactive.repId == "alice")
            #expect(inactive.inactivityDeadlineMs == 0)
            #expect(inactive.autoEndDeadlineMs == expiry + Millis.day)
            let last = try #require(try await d.events(s.id).last)
            #expect(last.fromStatus == .active && last.toStatus == .inactive)
            #expect(last.reason == .customerInactivityTimeout)
            #expect(last.actor?.kind == .actorSystem)
            #expect(last.timeMs == expiry)

            // Capacity freed by the timer goes to the waiting customer.
            let routed = try await d.session(waiting.id)
            #expect(routed.status == .active && routed.repId == "alice")
        }
    }

    @Test("Customer inactivity: a customer reply stops the countdown; a session leaving ACTIVE drops it")
    func customerReplyStopsCountdown() async throws {
        try await withDaemon { d in
            try await d.createChannel("byoc", .bringYourOwnChannel, inactivityTimeoutMs: 5 * Millis.minute)
            try await d.createRep("alice", capacity: 2)
            try await d.createRep("bob", capacity: 2, presence: .offline)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("chatty", on: "byoc")
            try await d.repWrites(s.id, via: alice)
            try await d.advance(4 * Millis.minute)
            let replied = try await d.customerWrites("chatty", on: "byoc", text: "sorry, I was away")
            #expect(replied.inactivityDeadlineMs == 0)
            try await d.advance(10 * Millis.minute)
            #expect(try await d.session(s.id).status == .active, "the reply stopped the countdown")

            // The next rep message starts a new countdown.
            let t2 = try await d.now()
            #expect(try await d.repWrites(s.id, via: alice).inactivityDeadlineMs == t2 + 5 * Millis.minute)

            // Leaving ACTIVE (alice goes offline) drops it: the session is requeued to bob without a countdown.
            try await d.setPresence("bob", .available)
            try await d.setPresence("alice", .offline, via: alice)
            let moved = try await d.session(s.id)
            #expect(moved.status == .active && moved.repId == "bob")
            #expect(moved.inactivityDeadlineMs == 0)
            try await d.advance(30 * Millis.minute)
            #expect(try await d.session(s.id).status == .active, "no stale countdown fires")

            // Marked inactive by hand while counting down: the countdown never fires afterwards.
            let bob = try await d.repClient("bob")
            try await d.repWrites(s.id, via: bob)
            try await d.advance(Millis.minute)
            let marked = try await d.markInactive(s.id, via: bob)
            #expect(marked.inactivityDeadlineMs == 0)
            let deadlineBefore = marked.autoEndDeadlineMs
            let historyBefore = try await d.events(s.id)
            try await d.advance(10 * Millis.minute)
            let still = try await d.session(s.id)
            #expect(still.status == .inactive && still.autoEndDeadlineMs == deadlineBefore)
            let historyAfter = try await d.events(s.id)
            #expect(historyAfter == historyBefore, "no CUSTOMER_INACTIVITY_TIMEOUT after a manual inactivate")
        }
    }

    @Test("The 24-hour end: an INACTIVE session ENDS (AUTO_ENDED) after 24 hours, not before")
    func inactiveSessionEndsAfter24Hours() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedInAppChat)
            try await d.createChannel("quick", .enhancedWhatsapp, autoEndAfterMs: 10 * Millis.minute)
            try await d.createRep("alice", capacity: 5)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("gone-quiet", on: "web")
            let returning = try await d.customerWrites("comes-back", on: "web")
            let quick = try await d.customerWrites("quick", on: "quick")
            let t0 = try await d.now()
            try await d.markInactive(s.id, via: alice)
            try await d.markInactive(returning.id, via: alice)
            try await d.markInactive(quick.id, via: alice)

            try await d.advance(10 * Millis.minute)
            let quickEnded = try await d.session(quick.id)
            #expect(quickEnded.status == .ended && quickEnded.endReason == .autoEnded, "a channel's own auto-end delay applies")

            try await d.advance(Millis.hour)
            try await d.customerWrites("comes-back", on: "web", text: "hi again")  // returns: no auto-end any more

            try await d.advance(23 * Millis.hour + 59 * Millis.minute - (Millis.hour + 10 * Millis.minute))
            #expect(try await d.now() == t0 + 23 * Millis.hour + 59 * Millis.minute)
            #expect(try await d.session(s.id).status == .inactive, "still INACTIVE at 23h59m")

            try await d.advance(Millis.minute)
            let ended = try await d.session(s.id)
            #expect(ended.status == .ended)
            #expect(ended.endReason == .autoEnded)
            #expect(ended.autoEndDeadlineMs == 0)
            #expect(ended.repId == "alice", "the last owner stays recorded")
            let last = try #require(try await d.events(s.id).last)
            #expect(last.fromStatus == .inactive && last.toStatus == .ended && last.reason == .autoEnded)
            #expect(last.actor?.kind == .actorSystem)
            #expect(last.timeMs == t0 + Millis.day)

            try await d.advance(2 * Millis.day)
            #expect(try await d.session(returning.id).status == .active, "a customer who returned is not auto-ended")
        }
    }

    @Test("AdvanceClock fires every due timer before it returns, more than one sweep batch at once")
    func advanceFiresAllDueTimers() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp)
            for rep in ["r1", "r2", "r3"] { try await d.createRep(rep, capacity: 100) }
            let service = try await d.serviceClient(name: "bulk")
            let admins = try (0..<4).map { _ in try d.client(token: TestDaemon.adminSecret) }
            let connections = admins + [service]
            let created = await race(300, clients: connections) { c, i in
                var r = SessionsV1.CreateSessionRequest()
                r.conversationId = "bulk-\(i)"
                r.channelId = "wa"
                return try #require(try await c.sessions.createSession(r).session)
            }
            let sessions = try created.map { try $0.get() }
            #expect(sessions.allSatisfy { $0.status == .active })
            let marked = await race(sessions.count, clients: admins) { c, i in
                var r = SessionsV1.MarkInactiveRequest()
                r.sessionId = sessions[i].id
                return try await c.sessions.markInactive(r)
            }
            for result in marked { _ = try result.get() }
            #expect(try await d.sessions(status: .inactive).count == 300)

            try await d.advance(Millis.day - 1)
            #expect(try await d.sessions(status: .inactive).count == 300)
            try await d.advance(1)
            // No polling: the call returned only after every due timer fired.
            let ended = try await d.sessions(status: .ended)
            #expect(ended.count == 300)
            #expect(ended.allSatisfy { $0.endReason == .autoEnded })
        }
    }

    @Test("One long AdvanceClock: a countdown that expired long ago still ends the session 24 h after it became INACTIVE")
    func overdueCountdownCountsFromItsDeadline() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2, inactivityTimeoutMs: 5 * Millis.minute)
            try await d.createRep("alice")
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("gone", on: "web")
            try await d.repWrites(s.id, via: alice)
            // Inactive 5 min after the rep's message, so ended 24 h after that: one jump past both.
            try await d.advance(5 * Millis.minute + Millis.day + Millis.hour)
            let after = try await d.session(s.id)
            #expect(after.status == .ended, "INACTIVE since 5 min after the rep's message; 24 h are over")
            #expect(after.endReason == .autoEnded)
            #expect(transitions(try await d.events(s.id)).suffix(2) == [
                "ACTIVE->INACTIVE:CUSTOMER_INACTIVITY_TIMEOUT", "INACTIVE->ENDED:AUTO_ENDED",
            ])
        }
    }
}
