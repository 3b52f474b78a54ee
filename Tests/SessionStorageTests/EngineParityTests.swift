import Dispatch
import SessionCore
import Testing

@testable import SessionStorage

/// A store the engine scenarios run against: every operation is one transaction.
protocol ScenarioStore {
    /// Runs `body` as one transaction (all-or-nothing).
    mutating func transaction<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T
    /// Simulates a restart of the server (the SQLite store closes and reopens its file).
    mutating func restart() throws
}

/// The reference: SessionCore's `InMemoryRepository`.
struct MemoryScenarioStore: ScenarioStore {
    var repository = InMemoryRepository()

    mutating func transaction<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try repository.transaction { repository in
            var erased: any SessionRepository = repository
            let result = try body(&erased)
            repository = try #require(erased as? InMemoryRepository)
            return result
        }
    }

    mutating func restart() {}
}

/// The subject: `SQLiteStore.write` on a real file.
struct SQLiteScenarioStore: ScenarioStore {
    let path: String
    var store: SQLiteStore

    init(path: String) throws {
        self.path = path
        store = try SQLiteStore(path: path)
    }

    mutating func transaction<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try store.write { repository in
            var erased: any SessionRepository = repository
            return try body(&erased)
        }
    }

    mutating func restart() throws {
        store = try SQLiteStore(path: path)
    }
}

/// Everything a repository holds, read through the protocol.
struct RepositorySnapshot: Equatable {
    var channels: [Channel]
    var reps: [Rep]
    var sessions: [Session]
    var events: [Event]
    var messages: [Message?]

    init(_ repository: some SessionRepository, messageIds: [String]) throws {
        channels = try repository.channels(after: nil, limit: 10_000)
        reps = try repository.reps(after: nil, limit: 10_000)
        sessions = try repository.sessions(matching: SessionFilter(), after: nil, limit: 10_000)
        events = try repository.events(afterCursor: 0, limit: 100_000)
        let channelIds = channels.map(\.id)
        messages = try messageIds.map { id in
            try channelIds.lazy.compactMap { try repository.message(channelId: $0, id: id) }.first
        }
    }
}

/// What one scenario step answered.
struct StepResult: Equatable {
    enum Outcome: Equatable {
        /// The operation's result (outcome, change set, page, ...).
        case value(AnyHashable)
        /// A `DomainError`: the operation was refused and rolled back.
        case refused(DomainError)
        /// Anything else (fails the test).
        case storageFailure(String)
    }

    var name: String
    var outcome: Outcome

    var isRefusal: Bool {
        if case .refused = outcome { return true }
        return false
    }
}

/// Runs engine operations on a store, one transaction each, and logs every outcome or error.
struct ScenarioRunner<Store: ScenarioStore> {
    var store: Store
    var engine = SessionEngine(ids: SequentialIDGenerator())
    var now = Fixtures.t0
    var log: [StepResult] = []

    init(store: Store) {
        self.store = store
    }

    mutating func advance(_ duration: Milliseconds) {
        now += duration
    }

    mutating func step<T: Hashable>(
        _ name: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (inout SessionEngine, inout any SessionRepository, Timestamp) throws -> T
    ) {
        let now = self.now
        var engine = self.engine
        do {
            let result = try store.transaction { repository in try body(&engine, &repository, now) }
            self.engine = engine
            log.append(StepResult(name: name, outcome: .value(AnyHashable(result))))
        } catch let error as DomainError {
            // A failed operation rolls back; the id generator keeps its state in both runs alike.
            log.append(StepResult(name: name, outcome: .refused(error)))
        } catch {
            Issue.record("\(name): storage failure \(error)", sourceLocation: sourceLocation)
            log.append(StepResult(name: name, outcome: .storageFailure("\(error)")))
        }
    }
}

let admin = SessionCore.Actor.admin("root")
let bridge = SessionCore.Actor.service("bridge")
let allMessageIds = (1...20).map { "m\($0)" }

/// create → route → customer inactivity countdown → mark inactive → return (tab- and status-based) →
/// auto-end → presence changes → business-initiated → end, with refused operations in between.
func lifecycleScenario<Store: ScenarioStore>(_ run: inout ScenarioRunner<Store>) throws {
    func message(_ id: String) -> IncomingMessage { IncomingMessage(messageId: id, text: "text of \(id)") }

    run.step("channel web") { engine, repo, now in
        try engine.createChannel(
            Channel(id: "web", type: .enhancedWebChatV2, capacityModel: .tabBased, capacityWeight: 1,
                    customerInactivityTimeout: .minutes(5), inactiveAutoEndAfter: .minutes(30)),
            by: admin, at: now, in: &repo)
    }
    run.step("channel wa") { engine, repo, now in
        try engine.createChannel(
            Channel(id: "wa", type: .enhancedWhatsApp, capacityModel: .statusBased, capacityWeight: 2,
                    inactiveAutoEndAfter: .hours(1)),
            by: admin, at: now, in: &repo)
    }
    run.step("channel std") { engine, repo, now in
        try engine.createChannel(Channel(id: "std", type: .standardSMS), by: admin, at: now, in: &repo)
    }
    run.step("duplicate channel") { engine, repo, now in
        try engine.createChannel(Channel(id: "std", type: .standardSMS), by: admin, at: now, in: &repo)
    }
    run.step("rep r1") { engine, repo, now in
        try engine.createRep(id: "r1", displayName: "Ana", capacity: 2, permissions: Set(Permission.allCases),
                             presence: .available, by: admin, at: now, in: &repo)
    }
    run.step("rep r2") { engine, repo, now in
        try engine.createRep(id: "r2", displayName: "Bo", capacity: 2, permissions: [.messagingAgent],
                             presence: .available, by: admin, at: now, in: &repo)
    }
    run.step("rep r3") { engine, repo, now in
        try engine.createRep(id: "r3", displayName: "Cy", capacity: 1, permissions: Set(Permission.allCases),
                             presence: .offline, by: admin, at: now, in: &repo)
    }
    run.advance(.seconds(1))
    run.step("create c1 on web") { engine, repo, now in
        try engine.createSession(conversationId: "c1", channelId: "web", firstMessage: message("m1"),
                                 by: bridge, at: now, in: &repo)
    }
    run.step("create c1 again (idempotent)") { engine, repo, now in
        try engine.createSession(conversationId: "c1", channelId: "web", by: bridge, at: now, in: &repo)
    }
    run.advance(.seconds(1))
    run.step("customer c2 on wa") { engine, repo, now in
        try engine.postCustomerMessage(message("m2"), to: .conversation(id: "c2", channelId: "wa"),
                                       by: bridge, at: now, in: &repo)
    }
    run.step("customer c3 on web") { engine, repo, now in
        try engine.postCustomerMessage(message("m3"), to: .conversation(id: "c3", channelId: "web"),
                                       by: bridge, at: now, in: &repo)
    }
    run.step("customer c4 on web (queues)") { engine, repo, now in
        try engine.postCustomerMessage(message("m4"), to: .conversation(id: "c4", channelId: "web"),
                                       by: bridge, at: now, in: &repo)
    }
    run.advance(.minutes(1))
    run.step("r1 writes on c1 (countdown starts)") { engine, repo, now in
        try engine.postRepMessage(message("m5"), sessionId: "ses_000001", by: .rep("r1"), at: now, in: &repo)
    }
    run.advance(.seconds(30))
    run.step("r1 writes again (no restart)") { engine, repo, now in
        try engine.postRepMessage(message("m6"), sessionId: "ses_000001", by: .rep("r1"), at: now, in: &repo)
    }
    run.step("retry of m5") { engine, repo, now in
        try engine.postRepMessage(message("m5"), sessionId: "ses_000001", by: .rep("r1"), at: now, in: &repo)
    }
    run.step("r2 may not mark r1's session") { engine, repo, now in
        try engine.markInactive(sessionId: "ses_000001", by: .rep("r2"), at: now, in: &repo)
    }
    run.step("r1 marks c3 inactive (c4 routed)") { engine, repo, now in
        try engine.markInactive(sessionId: "ses_000003", by: .rep("r1"), at: now, in: &repo)
    }
    run.step("c3 cannot be marked inactive twice") { engine, repo, now in
        try engine.markInactive(sessionId: "ses_000003", by: .rep("r1"), at: now, in: &repo)
    }
    try run.store.restart()
    run.advance(.minutes(5))
    run.step("timers: c1 inactivity timeout") { engine, repo, now in
        try engine.fireDueTimers(at: now, limit: 100, in: &repo)
    }
    run.step("customer returns on c3 (tab-based)") { engine, repo, now in
        try engine.postCustomerMessage(message("m7"), to: .session(id: "ses_000003"), by: bridge, at: now, in: &repo)
    }
    run.step("r2 marks c2 inactive") { engine, repo, now in
        try engine.markInactive(sessionId: "ses_000002", by: .rep("r2"), at: now, in: &repo)
    }
    run.advance(.seconds(10))
    run.step("customer returns on c2 (status-based)") { engine, repo, now in
        try engine.postCustomerMessage(message("m8"), to: .conversation(id: "c2", channelId: "wa"),
                                       by: bridge, at: now, in: &repo)
    }
    run.step("customer c5 on std (queues)") { engine, repo, now in
        try engine.postCustomerMessage(message("m9"), to: .conversation(id: "c5", channelId: "std"),
                                       by: bridge, at: now, in: &repo)
    }
    run.step("r3 becomes available (gets c5)") { engine, repo, now in
        try engine.setPresence(repId: "r3", .available, by: .rep("r3"), at: now, in: &repo)
    }
    run.step("standard channel refuses Inactive") { engine, repo, now in
        try engine.markInactive(sessionId: "ses_000005", by: .rep("r3"), at: now, in: &repo)
    }
    run.advance(.minutes(31))
    run.step("timers: c1 auto-ends") { engine, repo, now in
        try engine.fireDueTimers(at: now, limit: 100, in: &repo)
    }
    run.step("customer writes on ended c1 (new session)") { engine, repo, now in
        try engine.postCustomerMessage(message("m10"), to: .session(id: "ses_000001"), by: bridge, at: now, in: &repo)
    }
    try run.store.restart()
    run.step("r1 goes offline (sessions re-queued)") { engine, repo, now in
        try engine.setPresence(repId: "r1", .offline, by: admin, at: now, in: &repo)
    }
    run.step("business-initiated by r2 on c9") { engine, repo, now in
        try engine.startBusinessInitiated(repId: "r2", conversationId: "c9", channelId: "wa",
                                          by: .rep("r2"), at: now, in: &repo)
    }
    run.step("customer answers c9") { engine, repo, now in
        try engine.postCustomerMessage(message("m11"), to: .conversation(id: "c9", channelId: "wa"),
                                       by: bridge, at: now, in: &repo)
    }
    run.step("customer ends c2") { engine, repo, now in
        try engine.endSession(sessionId: "ses_000002", by: bridge, at: now, in: &repo)
    }
    run.step("reused message id") { engine, repo, now in
        try engine.postCustomerMessage(IncomingMessage(messageId: "m2", text: "other"),
                                       to: .conversation(id: "c2", channelId: "wa"), by: bridge, at: now, in: &repo)
    }
    run.step("r1 capacity 5") { engine, repo, now in
        try engine.updateRep(id: "r1", RepUpdate(capacity: 5), by: admin, at: now, in: &repo)
    }
    run.advance(.seconds(3))
    run.step("r1 available again (queue drains FIFO)") { engine, repo, now in
        try engine.setPresence(repId: "r1", .available, by: .rep("r1"), at: now, in: &repo)
    }
    run.step("bad page size") { engine, repo, now in
        try engine.listSessions(pageSize: -1, by: admin, in: repo)
    }
    run.step("list r1's sessions") { engine, repo, now in
        try engine.listSessions(SessionFilter(status: .active), pageSize: 2, by: .rep("r1"), in: repo)
    }
    run.step("workload r1") { engine, repo, now in
        try engine.workload(repId: "r1", by: admin, in: repo)
    }
    run.advance(.hours(2))
    run.step("timers: everything due") { engine, repo, now in
        try engine.fireDueTimers(at: now, limit: 2, in: &repo)
    }
    run.step("timers: the rest") { engine, repo, now in
        try engine.fireDueTimers(at: now, limit: 100, in: &repo)
    }
    run.step("events of c3") { engine, repo, now in
        try engine.listEvents(sessionId: "ses_000003", by: admin, in: repo)
    }
    run.step("event feed from cursor 10") { engine, repo, now in
        try engine.events(afterCursor: 10, pageSize: 5, by: bridge, in: repo)
    }
}

