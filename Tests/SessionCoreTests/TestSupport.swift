import SessionCore
import Testing

/// A clock that only moves when a test moves it.
struct ManualClock {
    /// The current time; starts at an arbitrary fixed instant.
    private(set) var now = Timestamp(millisecondsSinceEpoch: 1_700_000_000_000)

    /// Moves time forward.
    mutating func advance(by duration: Milliseconds) {
        now += duration
    }
}

/// A small world for tests: an in-memory store, an engine with sequential ids, and a manual clock.
/// Every operation runs in its own transaction and is followed by the capacity invariant check.
final class World {
    static let admin = Actor.admin("root")
    static let service = Actor.service("bridge")

    var repo = InMemoryRepository()
    var engine = SessionEngine(ids: SequentialIDGenerator())
    var clock = ManualClock()
    private var messageCounter = 0

    var now: Timestamp { clock.now }

    /// Runs `body` as one transaction at the current time, then checks the bookkeeping invariants.
    @discardableResult
    func run<T>(
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (inout SessionEngine, inout InMemoryRepository, Timestamp) throws -> T
    ) throws -> T {
        let now = clock.now
        var engine = self.engine
        defer {
            self.engine = engine
            checkInvariants(sourceLocation: sourceLocation)
        }
        return try repo.transaction { repo in try body(&engine, &repo, now) }
    }

    func checkInvariants(sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let violations = try CapacityAudit.violations(in: repo)
            #expect(violations.isEmpty, "invariants broken: \(violations)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("audit failed: \(error)", sourceLocation: sourceLocation)
        }
    }

    func advance(_ duration: Milliseconds) {
        clock.advance(by: duration)
    }

    // MARK: Setup shortcuts

    @discardableResult
    func addChannel(
        _ id: String, _ type: ChannelType = .enhancedWebChatV2, model: CapacityModel = .tabBased,
        weight: Int = 1, inactivityTimeout: Milliseconds? = nil, autoEndAfter: Milliseconds = .hours(24),
        actionVisible: Bool = true
    ) throws -> Channel {
        let channel = Channel(id: id, type: type, capacityModel: model, capacityWeight: weight,
                              customerInactivityTimeout: inactivityTimeout, inactiveAutoEndAfter: autoEndAfter,
                              inactivateActionVisible: actionVisible)
        return try run { engine, repo, now in try engine.createChannel(channel, by: World.admin, at: now, in: &repo) }
    }

    @discardableResult
    func addRep(
        _ id: String, capacity: Int = 2, permissions: Set<Permission> = Set(Permission.allCases),
        presence: Presence = .available
    ) throws -> Rep {
        try run { engine, repo, now in
            try engine.createRep(id: id, displayName: "Rep \(id)", capacity: capacity, permissions: permissions,
                                 presence: presence, by: World.admin, at: now, in: &repo).rep
        }
    }

    // MARK: Operations

    func nextMessageId(_ prefix: String) -> String {
        messageCounter += 1
        return "\(prefix)-msg-\(messageCounter)"
    }

    @discardableResult
    func customerWrites(
        _ conversation: String, on channel: String, id messageId: String? = nil, text: String = "hello"
    ) throws -> SessionOutcome {
        let messageId = messageId ?? nextMessageId("c")
        return try run { engine, repo, now in
            try engine.postCustomerMessage(IncomingMessage(messageId: messageId, text: text),
                                           to: .conversation(id: conversation, channelId: channel),
                                           by: World.service, at: now, in: &repo)
        }
    }

    @discardableResult
    func repWrites(_ sessionId: String, as actor: Actor, id messageId: String? = nil, text: String = "hi") throws -> SessionOutcome {
        let messageId = messageId ?? nextMessageId("r")
        return try run { engine, repo, now in
            try engine.postRepMessage(IncomingMessage(messageId: messageId, text: text), sessionId: sessionId,
                                      by: actor, at: now, in: &repo)
        }
    }

    @discardableResult
    func markInactive(_ sessionId: String, by actor: Actor) throws -> SessionOutcome {
        try run { engine, repo, now in try engine.markInactive(sessionId: sessionId, by: actor, at: now, in: &repo) }
    }

    @discardableResult
    func end(_ sessionId: String, by actor: Actor) throws -> SessionOutcome {
        try run { engine, repo, now in try engine.endSession(sessionId: sessionId, by: actor, at: now, in: &repo) }
    }

    @discardableResult
    func setPresence(_ repId: String, _ presence: Presence, by actor: Actor? = nil) throws -> RepOutcome {
        try run { engine, repo, now in
            try engine.setPresence(repId: repId, presence, by: actor ?? .rep(repId), at: now, in: &repo)
        }
    }

    @discardableResult
    func startBusinessInitiated(_ conversation: String, on channel: String, rep: String, by actor: Actor? = nil) throws -> SessionOutcome {
        try run { engine, repo, now in
            try engine.startBusinessInitiated(repId: rep, conversationId: conversation, channelId: channel,
                                              by: actor ?? .rep(rep), at: now, in: &repo)
        }
    }

    @discardableResult
    func fireDueTimers(limit: Int = 100) throws -> ChangeSet {
        try run { engine, repo, now in try engine.fireDueTimers(at: now, limit: limit, in: &repo) }
    }

    // MARK: Reading

    func session(_ id: String) -> Session {
        guard let session = repo.session(id: id) else {
            Issue.record("session \(id) does not exist")
            return Session(id: id, conversationId: "?", channelId: "?", status: .ended, createdAt: .epoch, updatedAt: .epoch)
        }
        return session
    }

    func rep(_ id: String) -> Rep {
        guard let rep = repo.rep(id: id) else {
            Issue.record("rep \(id) does not exist")
            return Rep(id: id, displayName: "?", capacity: 1, idleSince: .epoch)
        }
        return rep
    }

    func events(_ sessionId: String) -> [Event] {
        repo.events(sessionId: sessionId, afterSequence: 0, limit: 1_000)
    }
}

/// Expects `body` to throw a `DomainError` with `code` whose message contains every fragment.
@discardableResult
func expectDomainError<T>(
    _ code: DomainError.Code, _ fragments: String...,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> T
) -> DomainError? {
    do {
        _ = try body()
        Issue.record("expected \(code.rawValue), but the operation succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as DomainError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "message \"\(error.message)\" lacks \"\(fragment)\"", sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected a DomainError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A small seeded random number generator (SplitMix64) for reproducible property tests.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
