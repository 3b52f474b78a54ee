import SessionCore
import Testing

@Suite("Channels, reps and permissions")
struct ConfigurationTests {
    @Test("Only an admin may create or update channels, reps and permissions")
    func adminOnly() throws {
        let world = World()
        try world.addRep("r1")
        let channel = Channel(id: "web", type: .enhancedWebChatV2)
        for actor in [Actor.rep("r1"), World.service] {
            expectDomainError(.permissionDenied, "role \(actor.kind.rawValue) may not create channels; only an admin may") {
                try world.run { engine, repo, now in try engine.createChannel(channel, by: actor, at: now, in: &repo) }
            }
            expectDomainError(.permissionDenied, "may not create reps") {
                try world.run { engine, repo, now in
                    try engine.createRep(id: "r9", displayName: "X", capacity: 1, by: actor, at: now, in: &repo)
                }
            }
            expectDomainError(.permissionDenied, "may not update reps") {
                try world.run { engine, repo, now in
                    try engine.updateRep(id: "r1", RepUpdate(capacity: 9), by: actor, at: now, in: &repo)
                }
            }
            expectDomainError(.permissionDenied, "may not grant permissions") {
                try world.run { engine, repo, now in
                    try engine.grantPermission(.messagingAgent, to: "r1", by: actor, at: now, in: &repo)
                }
            }
            expectDomainError(.permissionDenied, "may not revoke permissions") {
                try world.run { engine, repo, now in
                    try engine.revokePermission(.messagingAgent, from: "r1", by: actor, at: now, in: &repo)
                }
            }
        }
        try world.addChannel("web")
        expectDomainError(.permissionDenied, "may not update channels") {
            try world.run { engine, repo, now in try engine.updateChannel(channel, by: .rep("r1"), at: now, in: &repo) }
        }
    }

    @Test("Creating a channel validates it and refuses a duplicate id")
    func createChannel() throws {
        let world = World()
        try world.addChannel("web")
        expectDomainError(.alreadyExists, "channel web already exists") {
            try world.addChannel("web")
        }
        expectDomainError(.invalidArgument, "capacity weight 0") {
            try world.addChannel("web2", weight: 0)
        }
        #expect(world.repo.channel(id: "web2") == nil)
    }

    @Test("Updating a channel validates it, keeps its type and needs it to exist")
    func updateChannel() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV2)
        var channel = try #require(world.repo.channel(id: "web"))
        channel.customerInactivityTimeout = .minutes(30)
        channel.inactiveAutoEndAfter = .days(2)
        channel.capacityModel = .statusBased
        let updated = try world.run { engine, repo, now in try engine.updateChannel(channel, by: World.admin, at: now, in: &repo) }
        #expect(updated.channel == channel)
        #expect(world.repo.channel(id: "web") == channel)
        var retyped = channel
        retyped.type = .enhancedWhatsApp
        retyped.customerInactivityTimeout = nil
        expectDomainError(.failedPrecondition, "channel web is ENHANCED_WEB_CHAT_V2; a channel's type cannot be changed") {
            try world.run { engine, repo, now in try engine.updateChannel(retyped, by: World.admin, at: now, in: &repo) }
        }
        channel.inactiveAutoEndAfter = .days(8)
        expectDomainError(.invalidArgument, "between 10 minutes and 7 days") {
            try world.run { engine, repo, now in try engine.updateChannel(channel, by: World.admin, at: now, in: &repo) }
        }
        expectDomainError(.notFound, "channel ghost does not exist") {
            try world.run { engine, repo, now in
                try engine.updateChannel(Channel(id: "ghost", type: .enhancedSMS), by: World.admin, at: now, in: &repo)
            }
        }
    }

    @Test("Any role may read channels, which list in id order with pages")
    func readChannels() throws {
        let world = World()
        for id in ["c", "a", "b"] {
            try world.addChannel(id)
        }
        #expect(try world.engine.getChannel("a", by: .rep("r1"), in: world.repo).id == "a")
        let page = try world.engine.listChannels(pageSize: 2, by: World.service, in: world.repo)
        #expect(page.items.map(\.id) == ["a", "b"])
        let rest = try world.engine.listChannels(pageSize: 2, pageToken: page.nextPageToken, by: World.service, in: world.repo)
        #expect(rest.items.map(\.id) == ["c"])
        #expect(rest.nextPageToken == nil)
        expectDomainError(.notFound, "channel zz does not exist") {
            try world.engine.getChannel("zz", by: World.admin, in: world.repo)
        }
    }

    @Test("Creating a rep validates capacity 1 to 100 and refuses a duplicate id")
    func createRep() throws {
        let world = World()
        let rep = try world.addRep("r1", capacity: 100, presence: .offline)
        #expect(rep.usedCapacity == 0)
        #expect(rep.idleSince == world.now)
        expectDomainError(.alreadyExists, "rep r1 already exists") {
            try world.addRep("r1")
        }
        expectDomainError(.invalidArgument, "rep r2 has capacity 101") {
            try world.addRep("r2", capacity: 101)
        }
        expectDomainError(.invalidArgument, "rep r2 has capacity 0") {
            try world.addRep("r2", capacity: 0)
        }
    }

    @Test("A rep created AVAILABLE takes waiting sessions at once")
    func availableRepRoutes() throws {
        let world = World()
        try world.addChannel("web")
        let session = try world.customerWrites("a", on: "web").session
        let outcome = try world.run { engine, repo, now in
            try engine.createRep(id: "r1", displayName: "Ann", capacity: 1, permissions: Set(Permission.allCases),
                                 presence: .available, by: World.admin, at: now, in: &repo)
        }
        #expect(outcome.rep.usedCapacity == 1)
        #expect(outcome.changes.events.map(\.sessionId) == [session.id])
    }

    @Test("Lowering a rep's capacity below its use keeps its sessions and stops new ones")
    func lowerCapacity() throws {
        let world = World()
        try world.addChannel("web")
        try world.addRep("r1", capacity: 3)
        for name in ["a", "b", "c"] {
            try world.customerWrites(name, on: "web")
        }
        let updated = try world.run { engine, repo, now in
            try engine.updateRep(id: "r1", RepUpdate(displayName: "Ann B.", capacity: 1), by: World.admin, at: now, in: &repo)
        }
        #expect(updated.rep.displayName == "Ann B.")
        #expect(updated.rep.usedCapacity == 3)
        #expect(updated.rep.freeCapacity == 0)
        #expect(try world.customerWrites("d", on: "web").session.status == .waiting)
        expectDomainError(.invalidArgument, "capacity 0") {
            try world.run { engine, repo, now in
                try engine.updateRep(id: "r1", RepUpdate(capacity: 0), by: World.admin, at: now, in: &repo)
            }
        }
    }

    @Test("Reps read themselves; services and admins read and list all reps")
    func readReps() throws {
        let world = World()
        try world.addRep("r1")
        try world.addRep("r2")
        #expect(try world.engine.getRep("r1", by: .rep("r1"), in: world.repo).id == "r1")
        expectDomainError(.permissionDenied, "rep r1 may not read rep r2") {
            try world.engine.getRep("r2", by: .rep("r1"), in: world.repo)
        }
        expectDomainError(.permissionDenied, "rep r1 may not list reps") {
            try world.engine.listReps(by: .rep("r1"), in: world.repo)
        }
        #expect(try world.engine.listReps(by: World.service, in: world.repo).items.map(\.id) == ["r1", "r2"])
        expectDomainError(.permissionDenied, "rep r2 may not read the workload of rep r1") {
            try world.engine.workload(repId: "r1", by: .rep("r2"), in: world.repo)
        }
    }

    @Test("Workload reports capacity, used and free units and the ACTIVE sessions behind them")
    func workload() throws {
        let world = World()
        try world.addChannel("web", weight: 2)
        try world.addChannel("sms", .enhancedSMS, weight: 1)
        try world.addRep("r1", capacity: 5)
        let a = try world.customerWrites("a", on: "web").session
        let b = try world.customerWrites("b", on: "sms").session
        let c = try world.customerWrites("c", on: "sms").session
        try world.markInactive(c.id, by: .rep("r1"))
        let workload = try world.engine.workload(repId: "r1", by: World.admin, in: world.repo)
        #expect(workload.capacity == 5)
        #expect(workload.used == 3)
        #expect(workload.free == 2)
        #expect(workload.activeSessions.map(\.id) == [a.id, b.id])
    }

    @Test("Granting and revoking permissions is idempotent and listed in canonical order")
    func grantRevokeList() throws {
        let world = World()
        try world.addRep("r1", permissions: [])
        for permission in [Permission.messagingAgent, .enhancedChatUser, .messagingAgent] {
            try world.run { engine, repo, now in
                try engine.grantPermission(permission, to: "r1", by: World.admin, at: now, in: &repo)
            }
        }
        #expect(try world.engine.permissions(of: "r1", by: .rep("r1"), in: world.repo) == [.enhancedChatUser, .messagingAgent])
        let revoked = try world.run { engine, repo, now in
            try engine.revokePermission(.enhancedChatRep, from: "r1", by: World.admin, at: now, in: &repo)
        }
        #expect(revoked.changes.isEmpty)
        try world.run { engine, repo, now in
            try engine.revokePermission(.messagingAgent, from: "r1", by: World.admin, at: now, in: &repo)
        }
        #expect(world.rep("r1").permissions == [.enhancedChatUser])
        expectDomainError(.notFound, "rep ghost does not exist") {
            try world.run { engine, repo, now in
                try engine.grantPermission(.messagingAgent, to: "ghost", by: World.admin, at: now, in: &repo)
            }
        }
    }

    @Test("Checking permissions names exactly the missing ones for the channel's family")
    func checkPermissions() throws {
        let world = World()
        try world.addChannel("web", .enhancedWebChatV2)
        try world.addChannel("byoc", .bringYourOwnChannel)
        try world.addChannel("sms", .standardSMS)
        try world.addRep("r1", permissions: [.enhancedChatRep])
        let web = try world.engine.checkPermissions(repId: "r1", channelId: "web", by: World.service, in: world.repo)
        #expect(!web.allowed)
        #expect(web.missing == [.enhancedChatUser])
        #expect(web.channelType == .enhancedWebChatV2)
        let byoc = try world.engine.checkPermissions(repId: "r1", channelId: "byoc", by: .rep("r1"), in: world.repo)
        #expect(byoc.missing == [.messagingAgent])
        try world.run { engine, repo, now in
            try engine.grantPermission(.messagingAgent, to: "r1", by: World.admin, at: now, in: &repo)
        }
        #expect(try world.engine.checkPermissions(repId: "r1", channelId: "sms", by: World.admin, in: world.repo).allowed)
        expectDomainError(.permissionDenied, "rep r2 may not check the permissions of rep r1") {
            try world.engine.checkPermissions(repId: "r1", channelId: "web", by: .rep("r2"), in: world.repo)
        }
    }

    @Test("A rep who loses a permission keeps its sessions but routing gives it no new ones there")
    func revokeKeepsSessions() throws {
        let world = World()
        try world.addChannel("wa", .enhancedWhatsApp)
        try world.addRep("r1", capacity: 3)
        let kept = try world.customerWrites("a", on: "wa").session
        try world.run { engine, repo, now in
            try engine.revokePermission(.messagingAgent, from: "r1", by: World.admin, at: now, in: &repo)
        }
        #expect(world.session(kept.id).repId == "r1")
        #expect(try world.customerWrites("b", on: "wa").session.status == .waiting)
        // An admin can still end the session the rep may no longer work on.
        #expect(try world.end(kept.id, by: World.admin).session.status == .ended)
    }
}
