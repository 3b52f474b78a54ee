import RPC
import SessionAPI
import SessionClient
import Testing

/// The source document, paragraph by paragraph: who may mark a session
/// "Customer Inactive", on which channels, with which permissions, and what
/// happens to capacity and to a customer who comes back. All over the wire.
@Suite("Inactivate a messaging session")
struct InactivateScenarioTests {
    // MARK: Who may inactivate

    @Test("Customer Inactive: the owning rep marks its ACTIVE session INACTIVE")
    func owningRepMarksInactive() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 2)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("conv-1", on: "web")
            #expect(s.status == .active)
            #expect(s.repId == "alice")

            let now = try await d.now()
            let inactive = try await d.markInactive(s.id, via: alice)
            #expect(inactive.status == .inactive)
            #expect(inactive.repId == "alice", "the rep stays recorded as the owner")
            #expect(inactive.autoEndDeadlineMs == now + Millis.day, "ends by itself about 24 hours later")
            #expect(inactive.version > s.version)

            let last = try #require(try await d.events(s.id).last)
            #expect(last.fromStatus == .active)
            #expect(last.toStatus == .inactive)
            #expect(last.reason == .markedInactive)
            #expect(last.actor?.kind == .actorRep)
            #expect(last.actor?.id == "alice")
            #expect(last.repId == "alice")
            #expect(try await d.session(s.id, via: alice).status == .inactive, "the rep still reads its inactive session")
        }
    }

    @Test("Customer Inactive: another rep is refused with PERMISSION_DENIED whatever the session's status")
    func anotherRepIsRefusedWhateverTheStatus() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV1)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 5, presence: .offline)
            let alice = try await d.repClient("alice")
            let bob = try await d.repClient("bob")

            let inactive = try await d.customerWrites("c-inactive", on: "web")
            try await d.markInactive(inactive.id, via: alice)
            let ended = try await d.customerWrites("c-ended", on: "web")
            try await d.end(ended.id, via: alice)
            let active = try await d.customerWrites("c-active", on: "web")
            #expect(active.status == .active && active.repId == "alice")
            let waiting = try await d.customerWrites("c-waiting", on: "web")
            #expect(waiting.status == .waiting, "alice is full and bob offline")
            var bi = SessionsV1.StartBusinessInitiatedRequest()
            bi.repId = "alice"
            bi.conversationId = "c-new"
            bi.channelId = "web"
            let new = try #require(try await alice.sessions.startBusinessInitiated(bi).session)
            #expect(new.status == .new)

            for s in [active, inactive, ended, waiting, new] {
                let before = try await d.session(s.id)
                await expectRPCError(.permissionDenied, containing: ["bob"], "session \(before.status.protoName)") {
                    try await d.markInactive(s.id, via: bob)
                }
                let after = try await d.session(s.id)
                #expect(after == before, "a refused call changes nothing")
            }
        }
    }

    @Test("Customer Inactive: an admin may mark any rep's ACTIVE session inactive")
    func adminMayMarkInactive() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice")
            let s = try await d.customerWrites("conv-1", on: "wa")
            let inactive = try await d.markInactive(s.id, via: d.admin)
            #expect(inactive.status == .inactive)
            #expect(inactive.repId == "alice")
            let last = try #require(try await d.events(s.id).last)
            #expect(last.reason == .markedInactive)
            #expect(last.actor?.kind == .actorAdmin)
            #expect(try await d.workload("alice").used == 0)
        }
    }

    @Test("Customer Inactive: a service (channel integration) is refused with PERMISSION_DENIED")
    func serviceIsRefused() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedInAppChat)
            try await d.createRep("alice", capacity: 1)
            let service = try await d.service()
            let active = try await d.customerWrites("conv-1", on: "web")
            let waiting = try await d.customerWrites("conv-2", on: "web")
            #expect(waiting.status == .waiting)
            for s in [active, waiting] {
                await expectRPCError(.permissionDenied, containing: ["SERVICE"]) {
                    try await d.markInactive(s.id, via: service)
                }
            }
            #expect(try await d.session(active.id).status == .active)
        }
    }

    @Test("Customer Inactive: only an ACTIVE session can be marked inactive (FAILED_PRECONDITION naming the status)")
    func onlyActiveSessionsCanBeMarkedInactive() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 1)
            let alice = try await d.repClient("alice")
            let inactive = try await d.customerWrites("c1", on: "web")
            try await d.markInactive(inactive.id, via: alice)
            let ended = try await d.customerWrites("c2", on: "web")
            try await d.end(ended.id, via: alice)
            _ = try await d.customerWrites("c3", on: "web")  // takes alice's only slot
            let waiting = try await d.customerWrites("c4", on: "web")
            var bi = SessionsV1.StartBusinessInitiatedRequest()
            bi.repId = "alice"
            bi.conversationId = "c5"
            bi.channelId = "web"
            let new = try #require(try await d.admin.sessions.startBusinessInitiated(bi).session)

            let cases: [(Session, String)] = [(waiting, "WAITING"), (inactive, "INACTIVE"), (ended, "ENDED"), (new, "NEW")]
            for (s, name) in cases {
                await expectRPCError(.failedPrecondition, containing: [name]) { try await d.markInactive(s.id, via: d.admin) }
            }
            // The owner gets the same answer on its own inactive session.
            await expectRPCError(.failedPrecondition, containing: ["INACTIVE"]) { try await d.markInactive(inactive.id, via: alice) }
            await expectRPCError(.notFound, containing: ["no-such-session"]) { try await d.markInactive("no-such-session", via: d.admin) }
        }
    }

    // MARK: Which channels

    @Test("Customer Inactive applies to every Enhanced channel type and to Bring Your Own Channel")
    func everyEnhancedTypeAndBYOCAllowIt() async throws {
        try await withDaemon { d in
            try await d.createRep("alice", capacity: 20)
            let alice = try await d.repClient("alice")
            for type in ChannelTypes.inactivatable {
                let channelId = "ch-\(type.protoName.lowercased())"
                try await d.createChannel(channelId, type)
                let s = try await d.customerWrites("conv-\(channelId)", on: channelId)
                #expect(s.status == .active, "\(type.protoName): routed")
                let inactive = try await d.markInactive(s.id, via: alice)
                #expect(inactive.status == .inactive, "\(type.protoName): marked inactive")
            }
            #expect(try await d.sessions(status: .inactive).count == ChannelTypes.inactivatable.count)
        }
    }

    @Test("Standard Facebook Messenger and Standard SMS refuse Customer Inactive with FAILED_PRECONDITION naming the channel type")
    func standardChannelsRefuseIt() async throws {
        try await withDaemon { d in
            try await d.createRep("alice", capacity: 5)
            let alice = try await d.repClient("alice")
            for type in ChannelTypes.standard {
                let channelId = "legacy-\(type.protoName.lowercased())"
                try await d.createChannel(channelId, type)
                // Standard channels still support sessions, routing and ending.
                let s = try await d.customerWrites("conv-\(channelId)", on: channelId)
                #expect(s.status == .active)
                #expect(s.repId == "alice")
                for caller in [alice, d.admin] {
                    await expectRPCError(.failedPrecondition, containing: [type.protoName]) {
                        try await d.markInactive(s.id, via: caller)
                    }
                }
                #expect(try await d.session(s.id).status == .active)
                let ended = try await d.end(s.id, via: alice)
                #expect(ended.status == .ended)
                #expect(ended.endReason == .endedByRep)
            }
        }
    }

    @Test("A hidden Customer Inactive action (inactivate_action_hidden) is refused until an admin shows it again")
    func hiddenActionIsRefused() async throws {
        try await withDaemon { d in
            let hidden = try await d.createChannel("web-hidden", .enhancedWebChatV2, inactivityTimeoutMs: 5 * Millis.minute, hidden: true)
            #expect(hidden.inactivateActionHidden)
            try await d.createRep("alice", capacity: 5)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("conv-1", on: "web-hidden")
            for caller in [alice, d.admin] {
                await expectRPCError(.failedPrecondition, containing: ["hidden"]) { try await d.markInactive(s.id, via: caller) }
            }
            #expect(try await d.session(s.id).status == .active)

            // The customer inactivity timer still works where the action is hidden.
            let timed = try await d.customerWrites("conv-2", on: "web-hidden")
            try await d.repWrites(timed.id, via: alice)
            try await d.advance(5 * Millis.minute)
            let timedOut = try await d.session(timed.id)
            #expect(timedOut.status == .inactive)
            #expect(try await d.events(timed.id).last?.reason == .customerInactivityTimeout)

            // Shown again: the rep can use it.
            var visible = hidden
            visible.inactivateActionHidden = false
            var update = SessionsV1.ChannelRequest()
            update.channel = visible
            let updated = try #require(try await d.admin.channels.updateChannel(update).channel)
            #expect(!updated.inactivateActionHidden)
            #expect(try await d.markInactive(s.id, via: alice).status == .inactive)
        }
    }

    // MARK: Permissions

    @Test("A rep without ENHANCED_CHAT_REP is refused on Enhanced Chat with PERMISSION_DENIED naming the permission")
    func repMissingChatRepPermissionIsRefused() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createRep("alice", capacity: 5)
            let alice = try await d.repClient("alice")
            let web = try await d.customerWrites("conv-web", on: "web")
            let wa = try await d.customerWrites("conv-wa", on: "wa")
            #expect(web.repId == "alice" && wa.repId == "alice")

            try await d.revoke(.enhancedChatRep, from: "alice")
            await expectRPCError(.permissionDenied, containing: ["ENHANCED_CHAT_REP", "alice"]) { try await d.markInactive(web.id, via: alice) }
            await expectRPCError(.permissionDenied, containing: ["ENHANCED_CHAT_REP"]) { try await d.repWrites(web.id, via: alice) }
            await expectRPCError(.permissionDenied, containing: ["ENHANCED_CHAT_REP"]) { try await d.end(web.id, via: alice) }
            #expect(try await d.session(web.id).status == .active)
            // Enhanced Messaging needs MESSAGING_AGENT only: still fine.
            #expect(try await d.markInactive(wa.id, via: alice).status == .inactive)

            // The licence alone is not enough either.
            try await d.grant(.enhancedChatRep, to: "alice")
            try await d.revoke(.enhancedChatUser, from: "alice")
            await expectRPCError(.permissionDenied, containing: ["ENHANCED_CHAT_USER"]) { try await d.markInactive(web.id, via: alice) }

            // Enhanced Messaging without MESSAGING_AGENT.
            try await d.grant(.enhancedChatUser, to: "alice")
            let wa2 = try await d.customerWrites("conv-wa2", on: "wa")
            #expect(wa2.repId == "alice")
            try await d.revoke(.messagingAgent, from: "alice")
            await expectRPCError(.permissionDenied, containing: ["MESSAGING_AGENT"]) { try await d.markInactive(wa2.id, via: alice) }
            // With both Enhanced Chat permissions back, the web session can be marked inactive.
            #expect(try await d.markInactive(web.id, via: alice).status == .inactive)
        }
    }

    @Test("Routing never hands a session to a rep who lacks its channel's permissions")
    func routingRespectsPermissions() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV1)
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createChannel("byoc", .bringYourOwnChannel)
            // Holds the licence but not the Enhanced Chat Rep permission.
            try await d.createRep("half", capacity: 5, permissions: [.enhancedChatUser, .messagingAgent])
            let web = try await d.customerWrites("conv-web", on: "web")
            #expect(web.status == .waiting, "half lacks ENHANCED_CHAT_REP")
            let wa = try await d.customerWrites("conv-wa", on: "wa")
            let byoc = try await d.customerWrites("conv-byoc", on: "byoc")
            #expect(wa.status == .active && wa.repId == "half")
            #expect(byoc.status == .active && byoc.repId == "half")
            #expect(try await d.session(web.id).status == .waiting)

            // A chat-only rep gets the web session, never Enhanced Messaging ones.
            try await d.createRep("chatter", capacity: 5, permissions: [.enhancedChatUser, .enhancedChatRep])
            let routedWeb = try await d.session(web.id)
            #expect(routedWeb.status == .active && routedWeb.repId == "chatter")
            try await d.setPresence("half", .busy)
            let wa2 = try await d.customerWrites("conv-wa2", on: "wa")
            #expect(wa2.status == .waiting, "chatter lacks MESSAGING_AGENT and half is busy")

            // Granting the missing permission routes it at once.
            try await d.grant(.messagingAgent, to: "chatter")
            let routedWa2 = try await d.session(wa2.id)
            #expect(routedWa2.status == .active && routedWa2.repId == "chatter")

            let halfLoad = try await d.workload("half")
            #expect(Set(halfLoad.activeSessions.map(\.id)) == [wa.id, byoc.id])
            for s in try await d.sessions(status: .active) {
                let events = try await d.events(s.id)
                #expect(!(s.channelId == "web" && events.contains { $0.repId == "half" }), "half never owned a web session")
            }
        }
    }

    @Test("CheckPermission reports whether a rep may work a channel and the permissions it lacks")
    func checkPermissionReportsMissing() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createChannel("wa", .enhancedWhatsapp)
            try await d.createChannel("byoc", .bringYourOwnChannel)
            try await d.createChannel("sms", .standardSms)
            try await d.createRep("none", permissions: [])
            try await d.createRep("licence", permissions: [.enhancedChatUser])
            try await d.createRep("full", permissions: allPermissions)

            func check(_ rep: String, _ channel: String, via client: SessionClient? = nil) async throws -> SessionsV1.CheckPermissionResponse {
                var r = SessionsV1.CheckPermissionRequest()
                r.repId = rep
                r.channelId = channel
                return try await (client ?? d.admin).permissions.checkPermission(r)
            }
            let noneWeb = try await check("none", "web")
            #expect(!noneWeb.allowed)
            #expect(noneWeb.missing == [.enhancedChatUser, .enhancedChatRep])
            #expect(try await check("none", "wa").missing == [.messagingAgent])
            #expect(try await check("none", "byoc").missing == [.messagingAgent])
            #expect(try await check("none", "sms").missing == [.messagingAgent])
            let licenceWeb = try await check("licence", "web")
            #expect(!licenceWeb.allowed)
            #expect(licenceWeb.missing == [.enhancedChatRep])
            for channel in ["web", "wa", "byoc", "sms"] {
                let full = try await check("full", channel)
                #expect(full.allowed && full.missing.isEmpty, "full rep on \(channel)")
            }

            // A rep checks itself; a service checks anyone; a rep may not check another rep.
            let licence = try await d.repClient("licence")
            #expect(try await check("licence", "web", via: licence).missing == [.enhancedChatRep])
            #expect(try await check("none", "wa", via: try await d.service()).missing == [.messagingAgent])
            await expectRPCError(.permissionDenied) { try await check("full", "web", via: licence) }
            await expectRPCError(.notFound, containing: ["nowhere"]) { try await check("full", "nowhere") }

            var list = SessionsV1.ListPermissionsRequest()
            list.repId = "licence"
            #expect(try await licence.permissions.listPermissions(list).permissions == [.enhancedChatUser])
        }
    }

    // MARK: Capacity

    @Test("Marking a session inactive frees the rep's capacity at once and the next WAITING session reaches that rep")
    func markingInactiveFreesCapacity() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice", capacity: 1)
            let alice = try await d.repClient("alice")
            let first = try await d.customerWrites("customer-1", on: "web")
            let second = try await d.customerWrites("customer-2", on: "web")
            #expect(first.status == .active && first.repId == "alice")
            #expect(second.status == .waiting)
            #expect(second.queuedAtMs > 0)
            let full = try await d.workload("alice", via: alice)
            #expect(full.used == 1 && full.free == 0)

            try await d.markInactive(first.id, via: alice)
            // No clock movement, no sweep: routing ran inside the call.
            let routed = try await d.session(second.id)
            #expect(routed.status == .active)
            #expect(routed.repId == "alice")
            #expect(routed.queuedAtMs == 0)
            let last = try #require(try await d.events(second.id).last)
            #expect(last.fromStatus == .waiting && last.toStatus == .active && last.reason == .routed)
            #expect(last.actor?.kind == .actorSystem)

            let load = try await d.workload("alice", via: alice)
            #expect(load.used == 1)
            #expect(load.capacity == 1)
            #expect(load.activeSessions.map(\.id) == [second.id])
            #expect(load.otherSessions.map(\.id) == [first.id], "the inactive session stays owned but uses no capacity")
            #expect(load.rep?.usedCapacity == 1)
        }
    }

    // MARK: The customer comes back

    @Test("Tab-based: a customer returning to an INACTIVE session is routed to any available rep")
    func tabBasedReturnIsRouted() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2, model: .tabBased)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 1, presence: .offline)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("returning", on: "web")
            #expect(s.repId == "alice")
            try await d.markInactive(s.id, via: alice)
            // alice's freed slot goes to a new customer; bob comes online.
            let other = try await d.customerWrites("newcomer", on: "web")
            #expect(other.repId == "alice")
            try await d.setPresence("bob", .available)

            let back = try await d.customerWrites("returning", on: "web", text: "I'm back")
            #expect(back.id == s.id, "the same session continues")
            #expect(back.status == .active)
            #expect(back.repId == "bob", "routed to an available rep, not kept by alice")
            #expect(back.autoEndDeadlineMs == 0)
            let events = try await d.events(s.id)
            #expect(transitions(events).suffix(2) == ["INACTIVE->WAITING:CUSTOMER_RETURNED", "WAITING->ACTIVE:ROUTED"])
            #expect(events[events.count - 2].repId == "alice", "the requeue names the previous owner")
            #expect(events.last?.repId == "bob")
            #expect(try await d.workload("alice").used == 1)

            // With nobody available it waits in the queue, then is routed when a rep frees up.
            try await d.markInactive(back.id, via: try await d.repClient("bob"))
            try await d.setPresence("bob", .busy)
            let queued = try await d.customerWrites("returning", on: "web", text: "still there?")
            #expect(queued.status == .waiting)
            #expect(queued.repId == "")
            try await d.end(other.id, via: alice)
            let routed = try await d.session(s.id)
            #expect(routed.status == .active && routed.repId == "alice")
        }
    }

    @Test("Status-based: a customer returning to an INACTIVE session continues with the same rep, ACTIVE even over capacity")
    func statusBasedReturnKeepsTheRep() async throws {
        try await withDaemon { d in
            try await d.createChannel("wa", .enhancedWhatsapp, model: .statusBased)
            try await d.createRep("alice", capacity: 1)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("returning", on: "wa")
            try await d.markInactive(s.id, via: alice)
            #expect(try await d.workload("alice").used == 0, "INACTIVE uses no capacity in the status-based model either")
            let other = try await d.customerWrites("newcomer", on: "wa")
            #expect(other.repId == "alice")
            // Another rep with free capacity is available: the same rep still continues.
            try await d.createRep("bob", capacity: 5)

            let back = try await d.customerWrites("returning", on: "wa", text: "back again")
            #expect(back.id == s.id)
            #expect(back.status == .active)
            #expect(back.repId == "alice")
            #expect(back.autoEndDeadlineMs == 0)
            let last = try #require(try await d.events(s.id).last)
            #expect(last.fromStatus == .inactive && last.toStatus == .active && last.reason == .customerReturned)
            #expect(last.repId == "alice")
            let load = try await d.workload("alice")
            #expect(load.used == 2)
            #expect(load.free == -1, "over capacity is allowed and reported")
            #expect(Set(load.activeSessions.map(\.id)) == [s.id, other.id])
            #expect(load.rep?.usedCapacity == 2)

            // A BUSY rep keeps its customers too (only OFFLINE sends them elsewhere).
            try await d.markInactive(s.id, via: alice)
            try await d.setPresence("alice", .busy, via: alice)
            let again = try await d.customerWrites("returning", on: "wa", text: "one more thing")
            #expect(again.status == .active && again.repId == "alice")
            // Alice gets no new routed work while over capacity.
            let third = try await d.customerWrites("third", on: "wa")
            #expect(third.repId == "bob")
        }
    }

    @Test("Status-based: when the rep is OFFLINE, the returning customer is routed like tab-based")
    func statusBasedReturnWithOfflineRepIsRouted() async throws {
        try await withDaemon { d in
            try await d.createChannel("byoc", .bringYourOwnChannel, model: .statusBased)
            try await d.createRep("alice", capacity: 1)
            try await d.createRep("bob", capacity: 1, presence: .offline)
            let alice = try await d.repClient("alice")
            let s = try await d.customerWrites("returning", on: "byoc")
            try await d.markInactive(s.id, via: alice)
            try await d.setPresence("alice", .offline, via: alice)
            #expect(try await d.session(s.id).status == .inactive, "going offline leaves INACTIVE sessions alone")

            let queued = try await d.customerWrites("returning", on: "byoc", text: "hello?")
            #expect(queued.status == .waiting, "alice is offline and nobody else is available")
            #expect(queued.repId == "")
            try await d.setPresence("bob", .available)
            let routed = try await d.session(s.id)
            #expect(routed.status == .active && routed.repId == "bob")
            let events = try await d.events(s.id)
            #expect(transitions(events).suffix(2) == ["INACTIVE->WAITING:CUSTOMER_RETURNED", "WAITING->ACTIVE:ROUTED"])
            #expect(try await d.workload("alice").used == 0)
            #expect(try await d.workload("bob").used == 1)

            // Same when the rep has lost the channel's permission meanwhile.
            let bob = try await d.repClient("bob")
            try await d.markInactive(s.id, via: bob)
            try await d.revoke(.messagingAgent, from: "bob")
            try await d.setPresence("alice", .available, via: alice)
            let rerouted = try await d.customerWrites("returning", on: "byoc", text: "again")
            #expect(rerouted.status == .active && rerouted.repId == "alice", "bob may no longer work BYOC sessions")
        }
    }
}
