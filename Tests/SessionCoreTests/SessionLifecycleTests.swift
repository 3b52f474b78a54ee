import SessionCore
import Testing

@Suite("Session lifecycle")
struct SessionLifecycleTests {
    @Test("A customer writing on a conversation with no open session opens a WAITING session that is routed")
    func customerOpensSession() throws {
        let world = World()
        try world.addChannel("web")
        let queued = try world.customerWrites("c1", on: "web")
        #expect(queued.session.status == .waiting)
        #expect(queued.session.queuedAt == world.now)
        #expect(queued.changes.events.map(\.reason) == [.customerMessage])

        try world.addRep("r1")
        let routed = world.session(queued.session.id)
        #expect(routed.status == .active)
        #expect(routed.repId == "r1")
        #expect(world.events(routed.id).map(\.reason) == [.customerMessage, .routed])
        #expect(world.rep("r1").usedCapacity == 1)
    }

    @Test("createSession opens a WAITING session and routes it at once")
    func createSessionRoutes() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let outcome = try world.run { engine, repo, now in
            try engine.createSession(conversationId: "c1", channelId: "web",
                                     firstMessage: IncomingMessage(messageId: "m1", text: "hi"),
                                     by: World.service, at: now, in: &repo)
        }
        #expect(outcome.session.id == "ses_000001")
        #expect(outcome.session.status == .active)
        #expect(outcome.changes.events.map(\.to) == [.waiting, .active])
        #expect(outcome.changes.events.map(\.reason) == [.created, .routed])
        #expect(outcome.changes.events[1].actor == .system)
        #expect(world.repo.message(channelId: "web", id: "m1")?.sessionId == outcome.session.id)
    }

    @Test("createSession is idempotent per conversation: an open session is returned unchanged")
    func idempotentCreate() throws {
        let world = World()
        try world.addChannel("web")
        try world.addChannel("sms", .enhancedSMS)
        let first = try world.run { engine, repo, now in
            try engine.createSession(conversationId: "c1", channelId: "web", by: World.service, at: now, in: &repo)
        }
        world.advance(.minutes(1))
        let second = try world.run { engine, repo, now in
            try engine.createSession(conversationId: "c1", channelId: "web", by: World.admin, at: now, in: &repo)
        }
        #expect(second.isDuplicate)
        #expect(second.session == first.session)
        #expect(second.changes.isEmpty)
        #expect(world.events(first.session.id).count == 1)
        expectDomainError(.failedPrecondition, "conversation c1 has open session ses_000001 on channel web, not on channel sms") {
            try world.run { engine, repo, now in
                try engine.createSession(conversationId: "c1", channelId: "sms", by: World.service, at: now, in: &repo)
            }
        }
    }

    @Test("Only a service or an admin may create sessions and post customer messages")
    func customerSideOnly() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        expectDomainError(.permissionDenied, "rep r1 may not create sessions") {
            try world.run { engine, repo, now in
                try engine.createSession(conversationId: "c1", channelId: "web", by: .rep("r1"), at: now, in: &repo)
            }
        }
        expectDomainError(.permissionDenied, "rep r1 may not post customer messages") {
            try world.run { engine, repo, now in
                try engine.postCustomerMessage(IncomingMessage(messageId: "m1", text: "x"),
                                               to: .conversation(id: "c1", channelId: "web"),
                                               by: .rep("r1"), at: now, in: &repo)
            }
        }
    }

    @Test("Creating a session on an unknown channel is NOT_FOUND naming the channel")
    func unknownChannel() throws {
        let world = World()
        expectDomainError(.notFound, "channel nope does not exist") {
            try world.customerWrites("c1", on: "nope")
        }
    }

    @Test("A retried customer message id returns the same session and appends nothing")
    func idempotentCustomerMessage() throws {
        let world = World()
        try world.addChannel("web")
        let first = try world.customerWrites("c1", on: "web", id: "m1", text: "hello")
        let eventsBefore = world.repo.events(afterCursor: 0, limit: 100)
        world.advance(.seconds(5))
        let retry = try world.customerWrites("c1", on: "web", id: "m1", text: "hello")
        #expect(retry.isDuplicate)
        #expect(retry.session.id == first.session.id)
        #expect(retry.changes.isEmpty)
        #expect(world.repo.events(afterCursor: 0, limit: 100) == eventsBefore)
        // Even after the session ended, the retry still answers with the session it went to.
        try world.end(first.session.id, by: World.service)
        let late = try world.customerWrites("c1", on: "web", id: "m1", text: "hello")
        #expect(late.isDuplicate)
        #expect(late.session.id == first.session.id)
        #expect(world.repo.openSession(conversationId: "c1") == nil)
    }

    @Test("A message id reused for different content is ALREADY_EXISTS")
    func reusedMessageID() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web", id: "m1", text: "hello").session
        expectDomainError(.alreadyExists, "message id m1 was already used for a different message") {
            try world.customerWrites("c1", on: "web", id: "m1", text: "other text")
        }
        expectDomainError(.alreadyExists, "message id m1") {
            try world.customerWrites("c2", on: "web", id: "m1", text: "hello")
        }
        expectDomainError(.alreadyExists, "message id m1") {
            try world.repWrites(session.id, as: .rep("r1"), id: "m1", text: "hello")
        }
    }

    @Test("A retried rep message id appends nothing and does not restart anything")
    func idempotentRepMessage() throws {
        let world = World()
        try world.addChannel("web", inactivityTimeout: .minutes(5))
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        let first = try world.repWrites(session.id, as: .rep("r1"), id: "r1-m1")
        world.advance(.minutes(1))
        let retry = try world.repWrites(session.id, as: .rep("r1"), id: "r1-m1")
        #expect(retry.isDuplicate)
        #expect(retry.changes.isEmpty)
        #expect(retry.session.inactivityDeadline == first.session.inactivityDeadline)
    }

    @Test("Without a channel id a customer message goes to the conversation's open session; with none open it is INVALID_ARGUMENT")
    func customerMessageWithoutChannel() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let open = try world.customerWrites("c1", on: "web", id: "m1").session
        let next = try world.customerWrites("c1", on: "", id: "m2")
        #expect(next.session.id == open.id)
        #expect(!next.isDuplicate)
        try world.end(open.id, by: .rep("r1"))
        // A retry of an accepted message still replays, with or without the channel.
        #expect(try world.customerWrites("c1", on: "", id: "m2").isDuplicate)
        expectDomainError(.invalidArgument, "c1 has no open session") {
            try world.customerWrites("c1", on: "", id: "m3")
        }
    }

    @Test("A customer reply after ENDED opens a new session on the same conversation")
    func replyAfterEnded() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let first = try world.customerWrites("c1", on: "web").session
        try world.end(first.id, by: .rep("r1"))
        world.advance(.minutes(3))
        let second = try world.customerWrites("c1", on: "web").session
        #expect(second.id != first.id)
        #expect(second.conversationId == "c1")
        #expect(second.status == .active)
        #expect(world.session(first.id).status == .ended)
        // Addressing the ended session directly also lands in the conversation's open session.
        let third = try world.run { engine, repo, now in
            try engine.postCustomerMessage(IncomingMessage(messageId: "mx", text: "again"), to: .session(id: first.id),
                                           by: World.service, at: now, in: &repo)
        }
        #expect(third.session.id == second.id)
    }

    @Test("A customer message on an ENDED session with no open successor opens a new session")
    func replyToEndedSessionByID() throws {
        let world = World()
        try world.addChannel("web")
        let first = try world.customerWrites("c1", on: "web").session
        try world.end(first.id, by: World.admin)
        let next = try world.run { engine, repo, now in
            try engine.postCustomerMessage(IncomingMessage(messageId: "m2", text: "back"), to: .session(id: first.id),
                                           by: World.service, at: now, in: &repo)
        }
        #expect(next.session.id != first.id)
        #expect(next.session.status == .waiting)
        #expect(next.changes.events.first?.reason == .customerMessage)
    }

    @Test("End Chat ends a session from every open status, with the reason following the actor")
    func endFromEveryStatus() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        let active = try world.customerWrites("a", on: "web").session          // ACTIVE with r1
        let waiting = try world.customerWrites("b", on: "web").session         // WAITING (r1 full)
        let new = try world.startBusinessInitiated("c", on: "web", rep: "r1").session
        #expect(world.session(active.id).status == .active)
        #expect(world.session(waiting.id).status == .waiting)
        #expect(new.status == .new)

        let endedNew = try world.end(new.id, by: .rep("r1"))
        #expect(endedNew.session.status == .ended)
        #expect(endedNew.session.endReason == .endedByRep)
        #expect(endedNew.changes.events.map(\.from) == [.new])

        let endedWaiting = try world.end(waiting.id, by: World.service)
        #expect(endedWaiting.session.endReason == .endedByCustomer)
        #expect(endedWaiting.session.queuedAt == nil)

        try world.markInactive(active.id, by: .rep("r1"))
        let endedInactive = try world.end(active.id, by: World.admin)
        #expect(endedInactive.session.endReason == .endedByAdmin)
        #expect(endedInactive.session.autoEndDeadline == nil)
        #expect(endedInactive.session.repId == "r1")
    }

    @Test("Ending an ENDED session is FAILED_PRECONDITION naming the status")
    func endEndedRefused() throws {
        let world = World()
        try world.addChannel("web")
        let session = try world.customerWrites("c1", on: "web").session
        try world.end(session.id, by: World.service)
        expectDomainError(.failedPrecondition, "session \(session.id) is ENDED") {
            try world.end(session.id, by: World.service)
        }
    }

    @Test("Ending an ACTIVE session frees its capacity and routes the next waiting session")
    func endFreesCapacity() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        let first = try world.customerWrites("a", on: "web").session
        let second = try world.customerWrites("b", on: "web").session
        #expect(world.session(second.id).status == .waiting)
        let outcome = try world.end(first.id, by: .rep("r1"))
        #expect(outcome.changes.sessions.map(\.id) == [first.id, second.id])
        #expect(world.session(second.id).status == .active)
        #expect(world.session(second.id).repId == "r1")
        #expect(world.rep("r1").usedCapacity == 1)
    }

    @Test("Only the owning rep, an admin or the customer's service may end a session")
    func whoMayEnd() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        try world.addRep("r2", presence: .offline)
        let session = try world.customerWrites("c1", on: "web").session
        expectDomainError(.permissionDenied, "rep r2 may not end session \(session.id); it is owned by rep r1") {
            try world.end(session.id, by: .rep("r2"))
        }
        expectDomainError(.permissionDenied, "role SERVICE", "only the owning rep or an admin") {
            try world.markInactive(session.id, by: World.service)
        }
        try world.setPresence("r1", .busy)
        let waiting = try world.customerWrites("c2", on: "web").session
        #expect(waiting.status == .waiting)
        expectDomainError(.permissionDenied, "rep r1 may not end session \(waiting.id); it has no owning rep") {
            try world.end(waiting.id, by: .rep("r1"))
        }
        #expect(try world.end(session.id, by: .rep("r1")).session.status == .ended)
        #expect(try world.end(waiting.id, by: World.service).session.status == .ended)
    }

    @Test("A rep lacking the channel's permissions is refused when ending its session")
    func endNeedsPermissions() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "wa").session
        try world.run { engine, repo, now in
            try engine.revokePermission(.messagingAgent, from: "r1", by: World.admin, at: now, in: &repo)
        }
        expectDomainError(.permissionDenied, "rep r1 lacks the MESSAGING_AGENT permission required on ENHANCED_WHATSAPP channels") {
            try world.end(session.id, by: .rep("r1"))
        }
    }

    @Test("Business-initiated: NEW owned by the rep, no capacity; the first reply makes it ACTIVE with that rep")
    func businessInitiatedToActive() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp, weight: 2)
        try world.addRep("r1", capacity: 2)
        let started = try world.startBusinessInitiated("c1", on: "wa", rep: "r1")
        #expect(started.session.status == .new)
        #expect(started.session.repId == "r1")
        #expect(started.session.heldCapacity == 0)
        #expect(started.changes.events.map(\.reason) == [.businessInitiated])
        #expect(world.rep("r1").usedCapacity == 0)
        // A rep may follow up on NEW before the customer answers.
        try world.repWrites(started.session.id, as: .rep("r1"))
        world.advance(.hours(2))
        let answered = try world.customerWrites("c1", on: "wa")
        #expect(answered.session.id == started.session.id)
        #expect(answered.session.status == .active)
        #expect(answered.session.repId == "r1")
        #expect(answered.changes.events.map(\.reason) == [.customerMessage])
        #expect(world.rep("r1").usedCapacity == 2)
        #expect(world.rep("r1").idleSince == world.now)
    }

    @Test("Business-initiated: if the owning rep is unavailable or full, the reply routes the session")
    func businessInitiatedRouted() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addRep("r1", capacity: 1)
        try world.addRep("r2", capacity: 1, presence: .offline)
        let started = try world.startBusinessInitiated("c1", on: "wa", rep: "r1")
        try world.customerWrites("c9", on: "wa")       // fills r1
        try world.setPresence("r2", .available)
        let answered = try world.customerWrites("c1", on: "wa")
        #expect(answered.session.id == started.session.id)
        #expect(answered.session.repId == "r2")
        #expect(answered.changes.events.map(\.to) == [.waiting, .active])
        #expect(answered.changes.events[0].repId == "r1")

        let busyStart = try world.startBusinessInitiated("c2", on: "wa", rep: "r1", by: World.service)
        try world.setPresence("r1", .offline)
        let queued = try world.customerWrites("c2", on: "wa")
        #expect(queued.session.id == busyStart.session.id)
        #expect(queued.session.status == .waiting)
        #expect(queued.session.repId == nil)
    }

    @Test("Business-initiated: refused when the conversation has an open session, or for another rep")
    func businessInitiatedRefusals() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addChannel("web", .enhancedWebChatV2)
        try world.addRep("r1")
        try world.addRep("r2", permissions: [.messagingAgent])
        let open = try world.customerWrites("c1", on: "wa").session
        expectDomainError(.failedPrecondition, "conversation c1 already has open session \(open.id), which is ACTIVE") {
            try world.startBusinessInitiated("c1", on: "wa", rep: "r1")
        }
        expectDomainError(.permissionDenied, "rep r1 may not start a session for rep r2") {
            try world.startBusinessInitiated("c2", on: "wa", rep: "r2", by: .rep("r1"))
        }
        expectDomainError(.permissionDenied, "rep r2 lacks the ENHANCED_CHAT_USER and ENHANCED_CHAT_REP permissions required on ENHANCED_WEB_CHAT_V2 channels") {
            try world.startBusinessInitiated("c3", on: "web", rep: "r2", by: World.admin)
        }
        expectDomainError(.notFound, "rep ghost does not exist") {
            try world.startBusinessInitiated("c4", on: "wa", rep: "ghost", by: World.admin)
        }
    }

    @Test("A rep may only send on ACTIVE or NEW sessions it owns")
    func repMessageRules() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 1)
        try world.addRep("r2", presence: .busy)
        let active = try world.customerWrites("c1", on: "web").session
        try world.repWrites(active.id, as: .rep("r1"))
        try world.repWrites(active.id, as: World.admin)
        expectDomainError(.permissionDenied, "rep r2 may not send messages on session \(active.id); it is owned by rep r1") {
            try world.repWrites(active.id, as: .rep("r2"))
        }
        expectDomainError(.permissionDenied, "role SERVICE may not send messages") {
            try world.repWrites(active.id, as: World.service)
        }
        let waiting = try world.customerWrites("c2", on: "web").session
        expectDomainError(.failedPrecondition, "session \(waiting.id) is WAITING; a rep can only send messages on an ACTIVE or NEW session") {
            try world.repWrites(waiting.id, as: World.admin)
        }
        try world.markInactive(active.id, by: .rep("r1"))
        #expect(world.session(waiting.id).status == .active)
        expectDomainError(.failedPrecondition, "session \(active.id) is INACTIVE", "ACTIVE or NEW") {
            try world.repWrites(active.id, as: .rep("r1"))
        }
        try world.end(active.id, by: .rep("r1"))
        expectDomainError(.failedPrecondition, "is ENDED") {
            try world.repWrites(active.id, as: .rep("r1"))
        }
        expectDomainError(.notFound, "session ses_999999 does not exist") {
            try world.repWrites("ses_999999", as: .rep("r1"))
        }
    }

    @Test("A rep lacking Enhanced Chat permissions is refused when sending, naming the missing permission")
    func repMessageNeedsPermission() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV1)
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        try world.run { engine, repo, now in
            try engine.revokePermission(.enhancedChatRep, from: "r1", by: World.admin, at: now, in: &repo)
        }
        expectDomainError(.permissionDenied, "rep r1 lacks the ENHANCED_CHAT_REP permission required on ENHANCED_WEB_CHAT_V1 channels") {
            try world.repWrites(session.id, as: .rep("r1"))
        }
    }

    @Test("Every transition appends one event with gapless per-session sequence numbers")
    func eventsAreGapless() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        let session = try world.customerWrites("c1", on: "web").session
        try world.markInactive(session.id, by: .rep("r1"))
        try world.customerWrites("c1", on: "web")
        try world.end(session.id, by: World.service)
        let events = world.events(session.id)
        #expect(events.map(\.sequence) == [1, 2, 3, 4, 5, 6])
        #expect(events.map(\.reason) == [.customerMessage, .routed, .markedInactive, .customerReturned, .routed, .endedByCustomer])
        #expect(events.map(\.from) == [nil, .waiting, .active, .inactive, .waiting, .active])
        #expect(events.map(\.to) == [.waiting, .active, .inactive, .waiting, .active, .ended])
        let cursors = events.map(\.cursor)
        #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)
        #expect(world.session(session.id).version == 6)
    }

    @Test("Reps read only their own sessions; services and admins read all")
    func readAuthorization() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        try world.addRep("r2")
        let s1 = try world.customerWrites("c1", on: "web").session
        let s2 = try world.customerWrites("c2", on: "web").session
        #expect(s1.repId == "r1" && s2.repId == "r2")
        #expect(try world.engine.getSession(s1.id, by: .rep("r1"), in: world.repo) == world.session(s1.id))
        expectDomainError(.permissionDenied, "rep r1 may not read session \(s2.id)") {
            _ = try world.engine.getSession(s2.id, by: .rep("r1"), in: world.repo)
        }
        let own = try world.engine.listSessions(by: .rep("r1"), in: world.repo)
        #expect(own.items.map(\.id) == [s1.id])
        expectDomainError(.permissionDenied, "rep r1 may not list the sessions of rep r2") {
            _ = try world.engine.listSessions(SessionFilter(repId: "r2"), by: .rep("r1"), in: world.repo)
        }
        #expect(try world.engine.listSessions(by: World.service, in: world.repo).items.count == 2)
        #expect(try world.engine.listEvents(sessionId: s1.id, by: World.service, in: world.repo).count == 2)
        expectDomainError(.permissionDenied, "rep r2 may not read the events of session \(s1.id)") {
            _ = try world.engine.listEvents(sessionId: s1.id, by: .rep("r2"), in: world.repo)
        }
        expectDomainError(.permissionDenied, "watch all session events") {
            _ = try world.engine.events(afterCursor: 0, by: .rep("r1"), in: world.repo)
        }
    }

    @Test("Listing sessions pages by id with a next-page token and filters by status, rep and channel")
    func listPaging() throws {
        let world = World()
        try world.addChannel("web")
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addRep("r1", capacity: 3)
        for index in 1...5 {
            try world.customerWrites("c\(index)", on: index.isMultiple(of: 2) ? "wa" : "web")
        }
        let first = try world.engine.listSessions(pageSize: 2, by: World.admin, in: world.repo)
        #expect(first.items.map(\.id) == ["ses_000001", "ses_000002"])
        let second = try world.engine.listSessions(pageSize: 2, pageToken: first.nextPageToken, by: World.admin, in: world.repo)
        #expect(second.items.map(\.id) == ["ses_000003", "ses_000004"])
        let third = try world.engine.listSessions(pageSize: 2, pageToken: second.nextPageToken, by: World.admin, in: world.repo)
        #expect(third.items.map(\.id) == ["ses_000005"])
        #expect(third.nextPageToken == nil)
        let waiting = try world.engine.listSessions(SessionFilter(status: .waiting), by: World.admin, in: world.repo)
        #expect(waiting.items.map(\.id) == ["ses_000004", "ses_000005"])
        let onWA = try world.engine.listSessions(SessionFilter(channelId: "wa"), by: World.admin, in: world.repo)
        #expect(onWA.items.map(\.id) == ["ses_000002", "ses_000004"])
        expectDomainError(.invalidArgument, "page size -1") {
            _ = try world.engine.listSessions(pageSize: -1, by: World.admin, in: world.repo)
        }
    }

    @Test("The event feed after a cursor misses nothing across sessions")
    func eventFeed() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1")
        try world.customerWrites("c1", on: "web")
        let firstBatch = try world.engine.events(afterCursor: 0, by: World.service, in: world.repo)
        #expect(firstBatch.count == 2)
        try world.customerWrites("c2", on: "web")
        let next = try world.engine.events(afterCursor: firstBatch.last!.cursor, by: World.service, in: world.repo)
        #expect(next.map(\.cursor) == [3, 4])
        #expect(next.map(\.sessionId) == ["ses_000002", "ses_000002"])
    }
}
