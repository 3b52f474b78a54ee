import SessionCore
import Testing

@Suite("Customer inactivity countdown and timers")
struct CustomerInactivityTimerTests {
    /// A world with an Enhanced Web Chat channel timing out after 5 minutes and one ACTIVE session.
    private func activeSession(timeout: Milliseconds? = .minutes(5), type: ChannelType = .enhancedWebChatV2) throws -> (World, Session) {
        let world = World()
        try world.addChannel("web", type, inactivityTimeout: timeout)
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        #expect(session.status == .active)
        return (world, session)
    }

    @Test("The countdown starts at the rep's first message after the customer's last one")
    func countdownStarts() throws {
        let (world, session) = try activeSession()
        #expect(world.session(session.id).inactivityDeadline == nil)
        world.advance(.seconds(30))
        let replied = try world.repWrites(session.id, as: .rep("r1"))
        #expect(replied.session.inactivityDeadline == world.now + .minutes(5))
        #expect(replied.session.awaitingCustomerSince == world.now)
        #expect(replied.changes.events.isEmpty)
    }

    @Test("Later rep messages do not restart the countdown")
    func countdownNotRestarted() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        let deadline = world.session(session.id).inactivityDeadline
        world.advance(.minutes(3))
        let later = try world.repWrites(session.id, as: .rep("r1"))
        #expect(later.session.inactivityDeadline == deadline)
        #expect(later.changes.isEmpty)
        world.advance(.minutes(2))
        try world.fireDueTimers()
        #expect(world.session(session.id).status == .inactive)
    }

    @Test("A customer message stops the countdown, and the next rep message starts a new one")
    func customerMessageStopsCountdown() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        world.advance(.minutes(4))
        let answered = try world.customerWrites("c1", on: "web")
        #expect(answered.session.inactivityDeadline == nil)
        #expect(answered.session.awaitingCustomerSince == nil)
        #expect(answered.changes.events.isEmpty)
        world.advance(.minutes(2))
        #expect(try world.fireDueTimers().isEmpty)
        #expect(world.session(session.id).status == .active)
        let again = try world.repWrites(session.id, as: .rep("r1"))
        #expect(again.session.inactivityDeadline == world.now + .minutes(5))
    }

    @Test("When the countdown expires the session becomes INACTIVE by itself, freeing capacity")
    func countdownExpires() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        world.advance(.minutes(5))
        let fired = try world.fireDueTimers()
        #expect(fired.events.map(\.reason) == [.customerInactivityTimeout])
        #expect(fired.events.first?.actor == .system)
        let inactive = world.session(session.id)
        #expect(inactive.status == .inactive)
        #expect(inactive.inactivityDeadline == nil)
        #expect(inactive.autoEndDeadline == world.now + .hours(24))
        #expect(world.rep("r1").usedCapacity == 0)
        // ... and then auto-ends 24 hours later.
        world.advance(.hours(24))
        #expect(try world.fireDueTimers().events.map(\.reason) == [.autoEnded])
    }

    @Test("The inactivity countdown applies only where configured, and only Enhanced Chat and BYOC can configure it")
    func countdownOnlyWhereConfigured() throws {
        let (world, session) = try activeSession(timeout: nil)
        try world.repWrites(session.id, as: .rep("r1"))
        #expect(world.session(session.id).inactivityDeadline == nil)
        world.advance(.hours(30))
        #expect(try world.fireDueTimers().isEmpty)

        let (byocWorld, byocSession) = try activeSession(type: .bringYourOwnChannel)
        #expect(try byocWorld.repWrites(byocSession.id, as: .rep("r1")).session.inactivityDeadline != nil)

        let other = World()
        expectDomainError(.invalidArgument, "channel wa is ENHANCED_WHATSAPP; a customer inactivity timeout can only be set") {
            try other.addChannel("wa", .enhancedWhatsApp, inactivityTimeout: .minutes(5))
        }
        expectDomainError(.invalidArgument, "STANDARD_SMS") {
            try other.addChannel("sms", .standardSMS, inactivityTimeout: .minutes(5))
        }
    }

    @Test("A session that leaves ACTIVE drops its countdown")
    func leavingActiveDropsCountdown() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        try world.markInactive(session.id, by: .rep("r1"))
        #expect(world.session(session.id).inactivityDeadline == nil)
        #expect(world.session(session.id).awaitingCustomerSince == nil)

        let (offlineWorld, other) = try activeSession()
        try offlineWorld.repWrites(other.id, as: .rep("r1"))
        try offlineWorld.setPresence("r1", .offline)
        let requeued = offlineWorld.session(other.id)
        #expect(requeued.status == .waiting)
        #expect(requeued.inactivityDeadline == nil)
        // The next rep's first message starts a fresh countdown.
        try offlineWorld.addRep("r2")
        offlineWorld.advance(.minutes(1))
        let fresh = try offlineWorld.repWrites(other.id, as: .rep("r2"))
        #expect(fresh.session.inactivityDeadline == offlineWorld.now + .minutes(5))
    }

    @Test("Timers fire once")
    func timersFireOnce() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        world.advance(.minutes(6))
        #expect(try world.fireDueTimers().events.count == 1)
        #expect(try world.fireDueTimers().isEmpty)
        let single = try world.run { engine, repo, now in try engine.fireTimer(sessionId: session.id, at: now, in: &repo) }
        #expect(single.isEmpty)
        #expect(world.events(session.id).filter { $0.reason == .customerInactivityTimeout }.count == 1)
    }

    @Test("A timer is not fired on a session that changed meanwhile")
    func changedSessionSkipped() throws {
        let (world, session) = try activeSession()
        try world.repWrites(session.id, as: .rep("r1"))
        world.advance(.minutes(5))
        // The sweeper found the session due, but the customer replied before it fired.
        let due = world.repo.sessionsWithDueDeadline(at: world.now, limit: 10)
        #expect(due.map(\.id) == [session.id])
        try world.customerWrites("c1", on: "web")
        let fired = try world.run { engine, repo, now in try engine.fireTimer(sessionId: session.id, at: now, in: &repo) }
        #expect(fired.isEmpty)
        #expect(world.session(session.id).status == .active)

        // Likewise an INACTIVE session the rep ended before its auto-end.
        try world.markInactive(session.id, by: .rep("r1"))
        world.advance(.hours(24))
        try world.end(session.id, by: .rep("r1"))
        #expect(try world.fireDueTimers().isEmpty)
        #expect(world.session(session.id).endReason == .endedByRep)
    }

    @Test("fireTimer fires one session's due timer and routes the freed capacity")
    func fireTimerSingle() throws {
        let (world, session) = try activeSession()
        try world.run { engine, repo, now in
            try engine.updateRep(id: "r1", RepUpdate(capacity: 1), by: World.admin, at: now, in: &repo)
        }
        let waiting = try world.customerWrites("c2", on: "web").session
        #expect(waiting.status == .waiting)
        try world.repWrites(session.id, as: .rep("r1"))
        world.advance(.minutes(5))
        let fired = try world.run { engine, repo, now in try engine.fireTimer(sessionId: session.id, at: now, in: &repo) }
        #expect(fired.events.map(\.reason) == [.customerInactivityTimeout, .routed])
        #expect(world.session(waiting.id).repId == "r1")
        let missing = try world.run { engine, repo, now in try engine.fireTimer(sessionId: "ses_nope", at: now, in: &repo) }
        #expect(missing.isEmpty)
    }

    @Test("An overdue countdown's auto-end counts from when it was due, not from when it fired")
    func overdueCountdownAutoEndsFromItsDeadline() throws {
        let (world, session) = try activeSession()
        let written = try world.repWrites(session.id, as: .rep("r1"))
        let deadline = try #require(written.session.inactivityDeadline)
        world.advance(.days(2))   // the server was down
        let fired = try world.fireDueTimers()
        #expect(fired.events.map(\.reason) == [.customerInactivityTimeout])
        #expect(world.session(session.id).autoEndDeadline == deadline + .hours(24))
        #expect(try world.fireDueTimers().events.map(\.reason) == [.autoEnded])
    }

    @Test("Overdue timers all fire at once, earliest first, up to the batch limit")
    func overdueTimersBatch() throws {
        let world = World()
        try world.addChannel("web", inactivityTimeout: .minutes(1))
        try world.addRep("r1", capacity: 10)
        var ids: [String] = []
        for index in 1...4 {
            let session = try world.customerWrites("c\(index)", on: "web").session
            try world.repWrites(session.id, as: .rep("r1"))
            ids.append(session.id)
            world.advance(.seconds(1))
        }
        world.advance(.days(3))   // a long outage: everything is overdue
        let first = try world.fireDueTimers(limit: 3)
        #expect(first.events.map(\.sessionId) == Array(ids.prefix(3)))
        let rest = try world.fireDueTimers(limit: 3)
        // The fourth countdown, then the first auto-ends: each counts from when its session went
        // quiet, which is long past.
        #expect(rest.events.map(\.sessionId) == [ids[3], ids[0], ids[1]])
        _ = try world.fireDueTimers(limit: 10)
        for id in ids { #expect(world.session(id).status == .ended) }
        expectDomainError(.invalidArgument, "limit 0") {
            try world.fireDueTimers(limit: 0)
        }
    }
}
