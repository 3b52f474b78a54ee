import SessionCore
import Testing

@Suite("Customer Inactive")
struct InactiveTests {
    @Test("Marking inactive frees capacity and routes the next waiting session")
    func markInactiveFreesAndRoutes() throws {
        let world = World()
        try world.addChannel("web", weight: 2)
        try world.addRep("r1", capacity: 2)
        let first = try world.customerWrites("a", on: "web").session
        let second = try world.customerWrites("b", on: "web").session
        #expect(world.session(second.id).status == .waiting)
        world.advance(.minutes(7))
        let outcome = try world.markInactive(first.id, by: .rep("r1"))
        #expect(outcome.session.status == .inactive)
        #expect(outcome.session.heldCapacity == 0)
        #expect(outcome.session.repId == "r1")
        #expect(outcome.session.autoEndDeadline == world.now + .hours(24))
        #expect(outcome.changes.events.map(\.reason) == [.markedInactive, .routed])
        #expect(world.session(second.id).status == .active)
        #expect(world.session(second.id).repId == "r1")
        #expect(world.rep("r1").usedCapacity == 2)
    }

    @Test("Only the owning rep or an admin may mark a session inactive, whatever its status")
    func whoMayInactivate() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        try world.addRep("r2", presence: .busy)
        let session = try world.customerWrites("c1", on: "web").session
        expectDomainError(.permissionDenied, "rep r2 may not mark session \(session.id) inactive; it is owned by rep r1") {
            try world.markInactive(session.id, by: .rep("r2"))
        }
        expectDomainError(.permissionDenied, "role SERVICE may not mark session \(session.id) inactive") {
            try world.markInactive(session.id, by: World.service)
        }
        try world.end(session.id, by: World.admin)
        // Authorization comes before the status check: still PERMISSION_DENIED on an ENDED session.
        expectDomainError(.permissionDenied, "rep r2 may not mark session") {
            try world.markInactive(session.id, by: .rep("r2"))
        }
        let other = try world.customerWrites("c2", on: "web").session
        #expect(try world.markInactive(other.id, by: World.admin).session.status == .inactive)
    }

    @Test("Marking a non-ACTIVE session inactive is FAILED_PRECONDITION naming its status")
    func inactivateRequiresActive() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        let active = try world.customerWrites("a", on: "web").session
        let waiting = try world.customerWrites("b", on: "web").session
        expectDomainError(.failedPrecondition, "session \(waiting.id) is WAITING; only an ACTIVE session can be marked inactive") {
            try world.markInactive(waiting.id, by: World.admin)
        }
        try world.markInactive(active.id, by: .rep("r1"))
        expectDomainError(.failedPrecondition, "session \(active.id) is INACTIVE; only an ACTIVE session") {
            try world.markInactive(active.id, by: .rep("r1"))
        }
        let new = try world.startBusinessInitiated("c", on: "web", rep: "r1").session
        expectDomainError(.failedPrecondition, "is NEW") {
            try world.markInactive(new.id, by: .rep("r1"))
        }
        try world.end(active.id, by: .rep("r1"))
        expectDomainError(.failedPrecondition, "is ENDED") {
            try world.markInactive(active.id, by: .rep("r1"))
        }
    }

    @Test("Standard channels never support the Inactive status, naming the channel type")
    func standardChannelsRefused() throws {
        let world = World()
        try world.addChannel("sms-legacy", .standardSMS)
        try world.addChannel("fb-legacy", .standardFacebookMessenger)
        try world.addRep("r1")
        let sms = try world.customerWrites("c1", on: "sms-legacy").session
        let fb = try world.customerWrites("c2", on: "fb-legacy").session
        #expect(world.session(sms.id).status == .active)
        expectDomainError(.failedPrecondition, "channel sms-legacy is STANDARD_SMS; standard channels do not support the Inactive status") {
            try world.markInactive(sms.id, by: .rep("r1"))
        }
        expectDomainError(.failedPrecondition, "STANDARD_FACEBOOK_MESSENGER") {
            try world.markInactive(fb.id, by: World.admin)
        }
        // Sessions, routing and ending still work on standard channels.
        #expect(try world.end(sms.id, by: .rep("r1")).session.status == .ended)
    }

    @Test("A hidden Customer Inactive action is refused")
    func hiddenActionRefused() throws {
        let world = World()
        try world.addChannel("web", actionVisible: false)
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        expectDomainError(.failedPrecondition, "the Customer Inactive action is hidden on channel web") {
            try world.markInactive(session.id, by: .rep("r1"))
        }
        var visible = try #require(world.repo.channel(id: "web"))
        visible.inactivateActionVisible = true
        try world.run { engine, repo, now in try engine.updateChannel(visible, by: World.admin, at: now, in: &repo) }
        #expect(try world.markInactive(session.id, by: .rep("r1")).session.status == .inactive)
    }

    @Test("A rep lacking the channel's permissions is refused when marking inactive, naming the permission")
    func inactivateNeedsPermission() throws {
        let world = World()
        try world.addChannel("web", .enhancedInAppChat)
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        try world.run { engine, repo, now in
            try engine.revokePermission(.enhancedChatUser, from: "r1", by: World.admin, at: now, in: &repo)
        }
        expectDomainError(.permissionDenied, "rep r1 lacks the ENHANCED_CHAT_USER permission required on ENHANCED_IN_APP_CHAT channels") {
            try world.markInactive(session.id, by: .rep("r1"))
        }
    }

    @Test("Tab-based: a customer returning to an INACTIVE session goes back to WAITING and is routed to any rep")
    func tabBasedReturn() throws {
        let world = World()
        try world.addChannel("web", model: .tabBased)
        try world.addRep("r1", capacity: 1)
        let session = try world.customerWrites("a", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.customerWrites("b", on: "web")              // r1 takes another session
        try world.addRep("r2", capacity: 1)
        world.advance(.hours(3))
        let back = try world.customerWrites("a", on: "web")
        #expect(back.session.id == session.id)
        #expect(back.session.status == .active)
        #expect(back.session.repId == "r2")
        #expect(back.session.autoEndDeadline == nil)
        #expect(back.changes.events.map(\.reason) == [.customerReturned, .routed])
        #expect(back.changes.events[0].to == .waiting)
        #expect(back.changes.events[0].repId == "r1")
    }

    @Test("Tab-based: with no rep free, the returning customer's session waits in the queue")
    func tabBasedReturnWaits() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        let session = try world.customerWrites("a", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.customerWrites("b", on: "web")
        let back = try world.customerWrites("a", on: "web")
        #expect(back.session.status == .waiting)
        #expect(back.session.repId == nil)
        #expect(back.session.queuedAt == world.now)
    }

    @Test("Status-based: the same rep continues the returning customer's session, even over capacity")
    func statusBasedReturnOverCapacity() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp, model: .statusBased, weight: 1)
        try world.addRep("r1", capacity: 1)
        try world.addRep("r2", capacity: 5)
        try world.setPresence("r2", .offline)
        let session = try world.customerWrites("a", on: "wa").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.customerWrites("b", on: "wa")               // r1 is full again
        try world.setPresence("r2", .available)
        let back = try world.customerWrites("a", on: "wa")
        #expect(back.session.status == .active)
        #expect(back.session.repId == "r1")
        #expect(back.changes.events.map(\.reason) == [.customerReturned])
        #expect(world.rep("r1").usedCapacity == 2)
        #expect(world.rep("r1").freeCapacity == 0)
        let workload = try world.engine.workload(repId: "r1", by: .rep("r1"), in: world.repo)
        #expect(workload.used == 2 && workload.capacity == 1 && workload.free == 0)
        #expect(workload.activeSessions.count == 2)
    }

    @Test("Status-based: a BUSY rep still continues the returning customer's session")
    func statusBasedReturnBusyRep() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp, model: .statusBased)
        try world.addRep("r1")
        let session = try world.customerWrites("a", on: "wa").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.setPresence("r1", .busy)
        let back = try world.customerWrites("a", on: "wa")
        #expect(back.session.status == .active)
        #expect(back.session.repId == "r1")
    }

    @Test("Status-based: if the rep is offline, the returning customer is routed like tab-based")
    func statusBasedReturnOfflineRep() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp, model: .statusBased)
        try world.addRep("r1")
        let session = try world.customerWrites("a", on: "wa").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.setPresence("r1", .offline)
        #expect(world.session(session.id).status == .inactive)
        try world.addRep("r2")
        let back = try world.customerWrites("a", on: "wa")
        #expect(back.session.status == .active)
        #expect(back.session.repId == "r2")
        #expect(back.changes.events.map(\.reason) == [.customerReturned, .routed])
    }

    @Test("An INACTIVE session ends by itself after the channel's auto-end delay (24 hours by default)")
    func autoEndAfter24Hours() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let session = try world.customerWrites("a", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        world.advance(.hours(24) - .milliseconds(1))
        #expect(try world.fireDueTimers().isEmpty)
        #expect(world.session(session.id).status == .inactive)
        world.advance(.milliseconds(1))
        let fired = try world.fireDueTimers()
        #expect(fired.events.map(\.reason) == [.autoEnded])
        #expect(fired.events.first?.actor == .system)
        let ended = world.session(session.id)
        #expect(ended.status == .ended)
        #expect(ended.endReason == .autoEnded)
        #expect(ended.autoEndDeadline == nil)
    }

    @Test("The auto-end delay follows the channel setting")
    func autoEndCustomDelay() throws {
        let world = World()
        try world.addChannel("web", autoEndAfter: .minutes(10))
        try world.addRep("r1")
        let session = try world.customerWrites("a", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        world.advance(.minutes(10))
        try world.fireDueTimers()
        #expect(world.session(session.id).status == .ended)
    }

    @Test("A customer returning before the auto-end cancels it")
    func returnCancelsAutoEnd() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let session = try world.customerWrites("a", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        world.advance(.hours(23))
        try world.customerWrites("a", on: "web")
        world.advance(.hours(2))
        #expect(try world.fireDueTimers().isEmpty)
        #expect(world.session(session.id).status == .active)
    }
}
