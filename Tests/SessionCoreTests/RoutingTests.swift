import SessionCore
import Testing

@Suite("Routing")
struct RoutingTests {
    @Test("Routing gives the session to the least utilised rep")
    func leastUtilised() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 4, presence: .offline)
        try world.addRep("r2", capacity: 2, presence: .offline)
        try world.setPresence("r1", .available)
        try world.customerWrites("a", on: "web")   // r1 (0/4 vs -); r1 → 1/4
        try world.setPresence("r2", .available)
        world.advance(.seconds(1))
        // r1 1/4 = 25%, r2 0/2 = 0% → r2
        #expect(try world.customerWrites("b", on: "web").session.repId == "r2")
        world.advance(.seconds(1))
        // r1 1/4 = 25%, r2 1/2 = 50% → r1
        #expect(try world.customerWrites("c", on: "web").session.repId == "r1")
        world.advance(.seconds(1))
        // r1 2/4 = 50% = r2 1/2: tie → idle longest: r2 received its last session before r1 did
        #expect(try world.customerWrites("d", on: "web").session.repId == "r2")
        // r1 2/4 = 50% < r2 2/2 = 100% → r1, although r1 received a session more recently
        #expect(try world.customerWrites("e", on: "web").session.repId == "r1")
    }

    @Test("Ties in utilisation go to the rep idle longest, then to the smallest id")
    func idleLongestTieBreak() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 2, presence: .offline)
        try world.addRep("r2", capacity: 2, presence: .offline)
        try world.addRep("r3", capacity: 2, presence: .offline)
        try world.setPresence("r3", .available)
        world.advance(.seconds(1))
        try world.setPresence("r2", .available)
        world.advance(.seconds(1))
        try world.setPresence("r1", .available)
        // All 0%: r3 became available first.
        #expect(try world.customerWrites("a", on: "web").session.repId == "r3")
        #expect(try world.customerWrites("b", on: "web").session.repId == "r2")
        #expect(try world.customerWrites("c", on: "web").session.repId == "r1")
        // Now all 1/2; r3 received its session longest ago... but all at the same `now`:
        // equal idleSince → smallest id.
        #expect(try world.customerWrites("d", on: "web").session.repId == "r1")
    }

    @Test("Becoming available again resets the idle-longest key")
    func availabilityResetsIdle() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", presence: .offline)
        try world.addRep("r2", presence: .offline)
        try world.setPresence("r1", .available)
        world.advance(.seconds(1))
        try world.setPresence("r2", .available)
        world.advance(.seconds(1))
        try world.setPresence("r1", .busy)
        try world.setPresence("r1", .available)
        #expect(world.rep("r1").idleSince == world.now)
        #expect(try world.customerWrites("a", on: "web").session.repId == "r2")
    }

    @Test("The queue is FIFO by time queued")
    func fifo() throws {
        let world = World()
        try world.addChannel("web")
        var order: [String] = []
        for name in ["a", "b", "c"] {
            order.append(try world.customerWrites(name, on: "web").session.id)
            world.advance(.seconds(1))
        }
        try world.addRep("r1", capacity: 1)
        #expect(world.session(order[0]).status == .active)
        try world.end(order[0], by: .rep("r1"))
        #expect(world.session(order[1]).status == .active)
        #expect(world.session(order[2]).status == .waiting)
        let queue = world.repo.waitingSessions(after: nil, limit: 10)
        #expect(queue.map(\.id) == [order[2]])
    }

    @Test("Routing never gives a session to a rep who lacks the channel's permissions")
    func permissionFiltering() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV2)
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addRep("chat-only", capacity: 5, permissions: [.enhancedChatUser, .enhancedChatRep])
        try world.addRep("half-chat", capacity: 5, permissions: [.enhancedChatRep, .messagingAgent])
        let wa = try world.customerWrites("a", on: "wa").session
        #expect(wa.repId == "half-chat")
        let web = try world.customerWrites("b", on: "web").session
        #expect(web.repId == "chat-only")
        try world.setPresence("chat-only", .busy)
        let stuck = try world.customerWrites("c", on: "web").session
        #expect(stuck.status == .waiting)
        // Granting the missing licence makes the rep routable for that channel at once.
        let granted = try world.run { engine, repo, now in
            try engine.grantPermission(.enhancedChatUser, to: "half-chat", by: World.admin, at: now, in: &repo)
        }
        #expect(granted.changes.events.map(\.reason) == [.routed])
        #expect(world.session(stuck.id).repId == "half-chat")
    }

    @Test("A session that cannot be placed does not block later sessions of other channels")
    func noHeadOfLineBlocking() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV2)
        try world.addChannel("wa", .enhancedWhatsApp)
        let blocked = try world.customerWrites("a", on: "web").session
        world.advance(.seconds(1))
        let later = try world.customerWrites("b", on: "wa").session
        try world.addRep("r1", capacity: 5, permissions: [.messagingAgent])
        #expect(world.session(blocked.id).status == .waiting)
        #expect(world.session(later.id).status == .active)
    }

    @Test("A heavy session that does not fit does not block a lighter one behind it")
    func weightsRespected() throws {
        let world = World()
        try world.addChannel("video", .enhancedInAppChat, weight: 3)
        try world.addChannel("sms", .enhancedSMS, weight: 1)
        try world.addRep("r1", capacity: 2)
        let heavy = try world.customerWrites("a", on: "video").session
        let light = try world.customerWrites("b", on: "sms").session
        #expect(heavy.status == .waiting)
        #expect(light.status == .active)
        #expect(world.rep("r1").usedCapacity == 1)
        try world.run { engine, repo, now in
            try engine.updateRep(id: "r1", RepUpdate(capacity: 4), by: World.admin, at: now, in: &repo)
        }
        #expect(world.session(heavy.id).status == .active)
        #expect(world.rep("r1").usedCapacity == 4)
        #expect(world.session(heavy.id).heldCapacity == 3)
    }

    @Test("A weight change applies to new assignments and never unbalances held capacity")
    func weightChange() throws {
        let world = World()
        try world.addChannel("web", weight: 1)
        try world.addRep("r1", capacity: 5)
        let first = try world.customerWrites("a", on: "web").session
        var channel = try #require(world.repo.channel(id: "web"))
        channel.capacityWeight = 3
        try world.run { engine, repo, now in try engine.updateChannel(channel, by: World.admin, at: now, in: &repo) }
        let second = try world.customerWrites("b", on: "web").session
        #expect(world.session(first.id).heldCapacity == 1)
        #expect(second.heldCapacity == 3)
        #expect(world.rep("r1").usedCapacity == 4)
        try world.end(first.id, by: .rep("r1"))
        #expect(world.rep("r1").usedCapacity == 3)
    }

    @Test("BUSY and OFFLINE reps get no new sessions; BUSY keeps its sessions")
    func busyAndOffline() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let kept = try world.customerWrites("a", on: "web").session
        try world.setPresence("r1", .busy)
        #expect(try world.customerWrites("b", on: "web").session.status == .waiting)
        #expect(world.session(kept.id).status == .active)
        #expect(world.session(kept.id).repId == "r1")
        try world.setPresence("r1", .available)
        #expect(world.session(try #require(world.repo.openSession(conversationId: "b")).id).repId == "r1")
    }

    @Test("A rep going OFFLINE puts its ACTIVE sessions back to WAITING and they are re-routed")
    func offlineRequeues() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 3)
        let a = try world.customerWrites("a", on: "web").session
        let b = try world.customerWrites("b", on: "web").session
        let inactive = try world.customerWrites("c", on: "web").session
        try world.markInactive(inactive.id, by: .rep("r1"))
        let new = try world.startBusinessInitiated("d", on: "web", rep: "r1").session
        try world.addRep("r2", capacity: 1, presence: .busy)
        try world.setPresence("r2", .available, by: World.admin)
        #expect(world.rep("r2").usedCapacity == 0)
        world.advance(.minutes(1))
        let outcome = try world.setPresence("r1", .offline)
        #expect(outcome.rep.usedCapacity == 0)
        #expect(outcome.rep.presence == .offline)
        let reasons = outcome.changes.events.map { "\($0.sessionId):\($0.reason.rawValue)" }
        #expect(reasons == ["\(a.id):REP_WENT_OFFLINE", "\(b.id):REP_WENT_OFFLINE", "\(a.id):ROUTED"])
        #expect(outcome.changes.events[0].repId == "r1")
        #expect(world.session(a.id).repId == "r2")
        #expect(world.session(b.id).status == .waiting)
        #expect(world.session(b.id).repId == nil)
        #expect(world.session(inactive.id).status == .inactive)
        #expect(world.session(new.id).status == .new)
        #expect(world.session(new.id).repId == "r1")
    }

    @Test("A rep sets its own presence; an admin may set anyone's; others are refused")
    func presenceAuthorization() throws {
        let world = World()
        try world.addRep("r1")
        try world.addRep("r2")
        expectDomainError(.permissionDenied, "rep r2 may not set the presence of rep r1") {
            try world.setPresence("r1", .offline, by: .rep("r2"))
        }
        expectDomainError(.permissionDenied, "role SERVICE may not set the presence of rep r1") {
            try world.setPresence("r1", .offline, by: World.service)
        }
        #expect(try world.setPresence("r1", .busy, by: World.admin).rep.presence == .busy)
        let unchanged = try world.setPresence("r1", .busy)
        #expect(unchanged.changes.isEmpty)
        expectDomainError(.notFound, "rep ghost does not exist") {
            try world.setPresence("ghost", .busy, by: World.admin)
        }
    }

    @Test("route(at:) can be run by a sweeper and does nothing when no rep has free capacity")
    func explicitRoute() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        try world.customerWrites("a", on: "web")
        try world.customerWrites("b", on: "web")
        let changes = try world.run { engine, repo, now in try engine.route(at: now, in: &repo) }
        #expect(changes.isEmpty)
    }

    @Test("Routing walks a long queue past many unplaceable sessions")
    func longQueue() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV2)
        try world.addChannel("wa", .enhancedWhatsApp)
        for index in 0..<600 {
            try world.customerWrites("w\(index)", on: "web")
        }
        let last = try world.customerWrites("z", on: "wa").session
        try world.addRep("r1", capacity: 1, permissions: [.messagingAgent])
        #expect(world.session(last.id).repId == "r1")
    }
}
