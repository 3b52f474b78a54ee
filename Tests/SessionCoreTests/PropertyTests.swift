import SessionCore
import Testing

@Suite("Randomized operation sequences")
struct PropertyTests {
    private static let conversations = (0..<12).map { "conv\($0)" }
    private static let repIds = ["r1", "r2", "r3", "r4"]
    private static let channelIds = ["web", "wa", "byoc", "sms", "heavy"]

    private func setUp(_ world: World) throws {
        try world.addChannel("web", .enhancedWebChatV2, model: .tabBased, weight: 1, inactivityTimeout: .minutes(3))
        try world.addChannel("wa", .enhancedWhatsApp, model: .statusBased, weight: 1)
        try world.addChannel("byoc", .bringYourOwnChannel, model: .statusBased, weight: 2, inactivityTimeout: .minutes(2),
                             autoEndAfter: .minutes(30))
        try world.addChannel("sms", .standardSMS, weight: 1)
        try world.addChannel("heavy", .enhancedInAppChat, model: .tabBased, weight: 3, autoEndAfter: .minutes(10))
        try world.addRep("r1", capacity: 3)
        try world.addRep("r2", capacity: 2, permissions: [.messagingAgent])
        try world.addRep("r3", capacity: 4, permissions: [.enhancedChatUser, .enhancedChatRep], presence: .busy)
        try world.addRep("r4", capacity: 1, presence: .offline)
    }

    /// After any operation, no WAITING session may be placeable: routing runs whenever it could place one.
    private func placeableWaiting(in repo: InMemoryRepository) -> [String] {
        let reps = repo.availableReps()
        return repo.waitingSessions(after: nil, limit: 10_000).compactMap { session in
            guard let channel = repo.channel(id: session.channelId) else { return nil }
            let fits = reps.contains {
                $0.freeCapacity >= channel.capacityWeight && $0.missingPermissions(for: channel.family).isEmpty
            }
            return fits ? session.id : nil
        }
    }

    private func randomActor(for session: Session?, using rng: inout SeededGenerator) -> Actor {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: return World.admin
        case 1: return World.service
        case 2: return .rep(Self.repIds.randomElement(using: &rng)!)
        default: return session?.repId.map { Actor.rep($0) } ?? World.admin
        }
    }

    @Test("Capacity, queue and event invariants hold after every operation of seeded random sequences",
          arguments: [1, 7, 42, 2_024, 99_991] as [UInt64])
    func invariantsHold(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let world = World()
        try setUp(world)
        var refused: [DomainError.Code: Int] = [:]
        var succeeded = 0

        for step in 0..<400 {
            let sessions = world.repo.sessions(matching: SessionFilter(), after: nil, limit: 10_000)
            let open = sessions.filter { $0.status.isOpen }
            let target = (open.isEmpty ? sessions : open).randomElement(using: &rng)
            do {
                switch Int.random(in: 0..<100, using: &rng) {
                case 0..<25:
                    let conversation = Self.conversations.randomElement(using: &rng)!
                    let channel = world.repo.openSession(conversationId: conversation)?.channelId
                        ?? Self.channelIds.randomElement(using: &rng)!
                    // Sometimes retry an earlier message id.
                    let id = Int.random(in: 0..<5, using: &rng) == 0 ? "m-retry-\(conversation)" : world.nextMessageId("p")
                    try world.customerWrites(conversation, on: channel, id: id, text: "x")
                case 25..<40:
                    guard let target else { continue }
                    try world.repWrites(target.id, as: randomActor(for: target, using: &rng))
                case 40..<50:
                    guard let target else { continue }
                    try world.markInactive(target.id, by: randomActor(for: target, using: &rng))
                case 50..<57:
                    guard let target else { continue }
                    try world.end(target.id, by: randomActor(for: target, using: &rng))
                case 57..<70:
                    let rep = Self.repIds.randomElement(using: &rng)!
                    let presence = Presence.allCases.randomElement(using: &rng)!
                    try world.setPresence(rep, presence, by: Bool.random(using: &rng) ? .rep(rep) : World.admin)
                case 70..<75:
                    let rep = Self.repIds.randomElement(using: &rng)!
                    try world.startBusinessInitiated(Self.conversations.randomElement(using: &rng)!,
                                                     on: Self.channelIds.randomElement(using: &rng)!, rep: rep)
                case 75..<88:
                    world.advance(.seconds(Int64.random(in: 1...900, using: &rng)))
                    try world.fireDueTimers(limit: Int.random(in: 1...5, using: &rng))
                case 88..<92:
                    let rep = Self.repIds.randomElement(using: &rng)!
                    let permission = Permission.allCases.randomElement(using: &rng)!
                    let grant = Bool.random(using: &rng)
                    try world.run { engine, repo, now in
                        grant
                            ? try engine.grantPermission(permission, to: rep, by: World.admin, at: now, in: &repo)
                            : try engine.revokePermission(permission, from: rep, by: World.admin, at: now, in: &repo)
                    }
                case 92..<96:
                    let rep = Self.repIds.randomElement(using: &rng)!
                    let capacity = Int.random(in: 1...5, using: &rng)
                    try world.run { engine, repo, now in
                        try engine.updateRep(id: rep, RepUpdate(capacity: capacity), by: World.admin, at: now, in: &repo)
                    }
                default:
                    var channel = try #require(world.repo.channel(id: Self.channelIds.randomElement(using: &rng)!))
                    channel.capacityWeight = Int.random(in: 1...3, using: &rng)
                    try world.run { engine, repo, now in
                        try engine.updateChannel(channel, by: World.admin, at: now, in: &repo)
                    }
                }
                succeeded += 1
            } catch let error as DomainError {
                refused[error.code, default: 0] += 1
                #expect(!error.message.isEmpty)
            }
            let placeable = placeableWaiting(in: world.repo)
            #expect(placeable.isEmpty, "seed \(seed) step \(step): waiting sessions left unrouted: \(placeable)")
            for rep in world.repo.reps(after: nil, limit: 100) {
                #expect(rep.usedCapacity >= 0, "seed \(seed) step \(step): rep \(rep.id) has negative use")
            }
        }
        // Events: per-session sequences gapless from 1; global cursors strictly increasing.
        let all = world.repo.events(afterCursor: 0, limit: 1_000_000)
        #expect(all.map(\.cursor) == Array(1...Int64(all.count)))
        for session in world.repo.sessions(matching: SessionFilter(), after: nil, limit: 10_000) {
            let sequences = world.repo.events(sessionId: session.id, afterSequence: 0, limit: 10_000).map(\.sequence)
            #expect(sequences == Array(1...Int64(sequences.count)))
            #expect(world.repo.events(sessionId: session.id, afterSequence: 0, limit: 10_000).last?.to == session.status)
        }
        // The sequence must actually exercise the lifecycle, not just collect refusals.
        let reasons = Set(all.map(\.reason))
        #expect(reasons.count >= 8, "seed \(seed): only \(reasons.map(\.rawValue).sorted()) happened")
        #expect(succeeded > 100, "seed \(seed): too few operations succeeded (\(succeeded)); refused \(refused)")
    }
}
