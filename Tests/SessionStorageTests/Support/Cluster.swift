import PostgresTestSupport
import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// Two (or more) stores on one fresh database, a shared test clock, and the
/// outcome of every operation.
final class Cluster: Sendable {
    let stores: [PostgresStore]
    let clock = TestClock()
    /// Storage failures (anything but a `DomainError`): there must be none.
    let failures = Failures()
    /// `DomainError`s: expected in races (FAILED_PRECONDITION), but never ABORTED.
    let refusals = Failures()

    init(instances: Int) throws {
        let url = try PostgresTestServer.makeDatabase()
        var options = PostgresStore.Options.forTests
        options.writerConnections = 3
        stores = try (0..<instances).map { _ in try PostgresStore(url: url, options: options) }
    }

    /// Runs one engine operation as one write on instance `instance % count`,
    /// as a server handler does: a fresh engine, the time read inside the
    /// transaction (so time never goes backwards in commit order).
    @discardableResult
    func run<T>(
        on instance: Int, _ name: String,
        _ body: (inout SessionEngine, Timestamp, inout any SessionRepository) throws -> T
    ) -> T? {
        do {
            return try stores[instance % stores.count].write { repository in
                var repo: any SessionRepository = repository
                var engine = SessionEngine()
                return try body(&engine, clock.tick(), &repo)
            }
        } catch let error as DomainError {
            refusals.add("\(name): \(error)")
        } catch {
            failures.add("\(name): \(error)")
        }
        return nil
    }

    /// Sweepers on every instance fire due timers in small batches until none is left.
    func fireAllDueTimers(threads: Int, batch: Int = 4) throws {
        runOnThreads(threads) { thread in
            for _ in 0..<1_000 {
                let changes = self.run(on: thread, "sweeper \(thread)") { engine, now, repo in
                    try engine.fireDueTimers(at: now, limit: batch, in: &repo)
                }
                if changes?.events.isEmpty ?? true { break }
            }
        }
    }

    /// Checks every invariant of several instances on the final state and the
    /// event log, and returns the log.
    func checkInvariants(
        channels: [Channel], sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [Event] {
        #expect(failures.all == [], sourceLocation: sourceLocation)
        #expect(refusals.all.filter { $0.contains("ABORTED") } == [], sourceLocation: sourceLocation)
        let store = stores[0]
        let (log, sessions, reps, audit) = try store.read { repo in
            (
                try repo.events(afterCursor: 0, limit: 1_000_000),
                try repo.sessions(matching: SessionFilter(), after: nil, limit: 1_000_000),
                try repo.reps(after: nil, limit: 1_000),
                try CapacityAudit.violations(in: repo)
            )
        }
        #expect(audit == [], sourceLocation: sourceLocation)

        // Cursors: unique, increasing, gapless.
        #expect(log.map(\.cursor) == (0..<Int64(log.count)).map { $0 + 1 }, sourceLocation: sourceLocation)

        // Per session: sequences 1...n, each event starts where the previous one ended
        // (so no session went ACTIVE twice, nor was routed twice), and the last one is the state.
        let bySession = Dictionary(grouping: log, by: \.sessionId)
        let sessionsByID = Dictionary(uniqueKeysWithValues: sessions.map { ($0.id, $0) })
        #expect(Set(bySession.keys) == Set(sessionsByID.keys), sourceLocation: sourceLocation)
        for (id, events) in bySession {
            #expect(events.map(\.sequence) == Array(1...Int64(events.count)), "session \(id)", sourceLocation: sourceLocation)
            #expect(events.first?.from == nil, "session \(id)", sourceLocation: sourceLocation)
            for (previous, next) in zip(events, events.dropFirst()) where next.from != previous.to {
                Issue.record(
                    "session \(id): event \(next.sequence) goes \(next.from?.rawValue ?? "-") → \(next.to.rawValue) after \(previous.to.rawValue)",
                    sourceLocation: sourceLocation)
            }
            #expect(events.last?.to == sessionsByID[id]?.status, "session \(id)", sourceLocation: sourceLocation)
        }

        // Replaying the log, routing never takes a rep over its capacity (only
        // a customer returning on a status-based channel may, by design).
        let capacity = Dictionary(uniqueKeysWithValues: reps.map { ($0.id, $0.capacity) })
        let channelsByID = Dictionary(uniqueKeysWithValues: channels.map { ($0.id, $0) })
        var held: [String: Int] = [:]
        var holding: [String: (rep: String, units: Int)] = [:]
        for event in log {
            if event.from == .active, let hold = holding.removeValue(forKey: event.sessionId) {
                held[hold.rep, default: 0] -= hold.units
            }
            guard event.to == .active, let repId = event.repId, let session = sessionsByID[event.sessionId],
                let channel = channelsByID[session.channelId]
            else { continue }
            holding[event.sessionId] = (repId, channel.capacityWeight)
            held[repId, default: 0] += channel.capacityWeight
            let mayExceed = event.reason == .customerReturned && channel.capacityModel == .statusBased
            if !mayExceed, held[repId, default: 0] > capacity[repId, default: 0] {
                Issue.record(
                    "event \(event.cursor) (\(event.reason.rawValue)) takes rep \(repId) to \(held[repId, default: 0]) of \(capacity[repId, default: 0]) units",
                    sourceLocation: sourceLocation)
            }
        }
        for rep in reps {
            #expect(held[rep.id, default: 0] == rep.usedCapacity, "rep \(rep.id)", sourceLocation: sourceLocation)
        }
        return log
    }
}
