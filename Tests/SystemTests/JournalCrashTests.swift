import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import SessionCore
import SessionStorage
import Testing

/// kill -9 of sessiond at random points of its journal batches, many times over one data
/// directory: after each kill the database must hold every acknowledged change, nothing that was
/// never sent, and no half-applied command (capacity, events and statuses agree).
@Suite("Journal crash safety with a real sessiond")
struct JournalCrashTests {
    static let kills = 50

    /// What the writers did, as the clients saw it.
    struct Ledger: Sendable {
        /// Conversations a request was sent for (answered or not).
        var sent: Set<String> = []
        /// conversation → (session id, the status the last acknowledged call left it in).
        var acked: [String: (session: String, status: SessionsV1.SessionStatus)] = [:]
        var answers = 0
    }

    @Test("kill -9 at random points of journal batches, 50 times: every acknowledged change survives, nothing else appears",
          arguments: ["sqlite", "postgres"])
    func randomKills(store: String) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let url = store == "sqlite" ? nil : try PostgresTestServer.makeDatabase()
        let storeArguments = url.map { ["--store", $0] } ?? []
        let ledger = Shared(Ledger())
        var generator = SeededGenerator(seed: UInt64.random(in: 1...UInt64.max))
        let seed = generator.seed
        var next = 0
        for cycle in 0..<Self.kills {
            let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: storeArguments + ["--durability", "full"])
            // Kill after a random number of answers in this cycle: somewhere inside the stream of batches.
            let killAfter = Int.random(in: 1...40, using: &generator)
            let start = next
            next += 10_000
            try await daemon.withLogOnFailure {
                if cycle == 0 {
                    let admin = try daemon.client()
                    defer { admin.close() }
                    try await setUpChannelAndReps(admin, reps: 4, capacity: 100)
                }
                let clients = try (0..<4).map { _ in try daemon.client() }
                defer { for client in clients { client.close() } }
                let enough = AsyncStream<Void>.makeStream()
                let baseline = ledger.value.answers
                let writers = Task {
                    await withTaskGroup(of: Void.self) { group in
                        for (w, client) in clients.enumerated() {
                            group.addTask {
                                for n in stride(from: start + w, to: start + 10_000, by: 4) {
                                    let conversation = "k\(n)"
                                    ledger.withLock { _ = $0.sent.insert(conversation) }
                                    guard let opened = try? await customerMessage(client, conversation: conversation, channel: "web", message: "m\(n)"),
                                          let session = opened.session else { return }
                                    Self.acknowledge(ledger, conversation, session, enough)
                                    var end = SessionsV1.EndSessionRequest()
                                    end.sessionId = session.id
                                    guard let ended = try? await client.sessions.endSession(end, options: .init(timeout: .seconds(30))),
                                          let endedSession = ended.session else { return }
                                    Self.acknowledge(ledger, conversation, endedSession, enough)
                                }
                            }
                        }
                    }
                }
                let watching = Task {
                    for await _ in enough.stream where ledger.value.answers - baseline >= killAfter { break }
                }
                Task { await writers.value; enough.continuation.finish() }
                await watching.value
                daemon.kill9()
                await writers.value
            }
            let problems = try url.map { try Self.check(postgres: $0, against: ledger.value) }
                ?? Self.check(database: dir + "/sessions.sqlite", against: ledger.value)
            #expect(problems.isEmpty, "\(store), after kill \(cycle + 1) (seed \(seed), killed after \(killAfter) answers): \(problems.prefix(10))")
            if !problems.isEmpty { return }
        }
        let final = ledger.value
        #expect(final.acked.count >= Self.kills, "only \(final.acked.count) acknowledged conversations over \(Self.kills) kills")
    }

    private static func acknowledge(
        _ ledger: Shared<Ledger>, _ conversation: String, _ session: SessionsV1.Session, _ enough: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)
    ) {
        ledger.withLock { l in
            l.acked[conversation] = (session.id, session.status)
            l.answers += 1
        }
        enough.continuation.yield()
    }

    /// Reads the database directly (as it is after the kill) and lists what is wrong.
    static func check(database: String, against ledger: Ledger) throws -> [String] {
        let store = try SQLiteStore(path: database)
        // What sessiond does first at a restart: the journal records after the tables' applied
        // sequence go to the tables (the tables lag the journal while sessiond runs).
        _ = try JournaledSQLiteStore(store: store, directory: (database as NSString).deletingLastPathComponent, syncs: true).loadPartition()
        return try store.read { (repo: SQLiteRepository) -> [String] in try check(repo, against: ledger) }
    }

    /// The same checks on a PostgreSQL database (one transaction per call: nothing to replay).
    static func check(postgres url: String, against ledger: Ledger) throws -> [String] {
        let store = try PostgresStore(url: url)
        return try store.read { repo in try check(repo, against: ledger) }
    }

    static func check(_ repo: some SessionRepository, against ledger: Ledger) throws -> [String] {
        do {
            var problems = try CapacityAudit.violations(in: repo)
            var sessions: [String: Session] = [:]
            var after: String?
            while true {
                let page = try repo.sessions(matching: SessionFilter(), after: after, limit: 1000)
                for s in page { sessions[s.id] = s }
                guard page.count == 1000 else { break }
                after = page.last?.id
            }
            for (conversation, acked) in ledger.acked {
                guard let stored = sessions[acked.session] else {
                    problems.append("acknowledged session \(acked.session) of \(conversation) is missing")
                    continue
                }
                // An end in flight at the kill may or may not have become durable; an acknowledged end must have.
                // An acknowledged INACTIVE may have been followed by a reply (ACTIVE) or an end.
                let allowed: Set<SessionStatus> = switch acked.status {
                case .ended: [.ended]
                case .inactive: [.inactive, .active, .ended]
                default: [.active, .waiting, .ended]
                }
                if !allowed.contains(stored.status) {
                    problems.append("session \(stored.id) is \(stored.status.rawValue), acknowledged as \(acked.status)")
                }
            }
            for session in sessions.values {
                if !ledger.sent.contains(session.conversationId) {
                    problems.append("session \(session.id) of \(session.conversationId) was never asked for")
                }
                let events = try repo.events(sessionId: session.id, afterSequence: 0, limit: 1000)
                if events.isEmpty || events.map(\.sequence) != (0..<events.count).map({ Int64($0 + 1) }) {
                    problems.append("session \(session.id) has events \(events.map(\.sequence)), not 1...n")
                }
                if events.last?.to != session.status {
                    problems.append("session \(session.id) is \(session.status.rawValue) but its last event says \(events.last.map { $0.to.rawValue } ?? "nothing")")
                }
            }
            return problems
        }
    }
}

/// SplitMix64: a reproducible random sequence from a seed the failure message names.
struct SeededGenerator: RandomNumberGenerator {
    let seed: UInt64
    private var state: UInt64
    init(seed: UInt64) { self.seed = seed; state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
