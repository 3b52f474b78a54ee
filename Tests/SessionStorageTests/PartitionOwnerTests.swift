import Dispatch
import Foundation
import SessionCore
import SessionState
import Synchronization
import Testing

@testable import SessionStorage

/// A SQLite journal whose commits the test holds, fails or counts.
final class ControlledJournal: PartitionJournal, Sendable {
    let store: SQLiteStore
    private let control = Mutex(Control())

    struct Control {
        var hold: DispatchSemaphore?
        var entered: DispatchSemaphore?
        var failNext: (any Error)?
        var batchSizes: [Int] = []
    }

    struct InjectedFailure: Error, CustomStringConvertible {
        var description: String { "injected commit failure" }
    }

    init(_ store: SQLiteStore) { self.store = store }

    /// The next commit signals `entered`, then waits for `release()`.
    func holdNextCommit() -> (entered: DispatchSemaphore, release: @Sendable () -> Void) {
        let hold = DispatchSemaphore(value: 0), entered = DispatchSemaphore(value: 0)
        control.withLock { $0.hold = hold; $0.entered = entered }
        return (entered, { hold.signal() })
    }

    func failNextCommit() { control.withLock { $0.failNext = InjectedFailure() } }
    var batchSizes: [Int] { control.withLock { $0.batchSizes } }

    func loadPartition() throws -> PartitionSnapshot { try store.loadPartition() }

    func commit(_ batch: JournalBatch) throws {
        let (hold, entered, failure) = control.withLock { c in
            defer { c.hold = nil; c.entered = nil; c.failNext = nil }
            return (c.hold, c.entered, c.failNext)
        }
        entered?.signal()
        hold?.wait()
        if let failure { throw failure }
        try store.commit(batch)
        control.withLock { $0.batchSizes.append(batch.events.count) }
    }

    func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T { try store.readDurable(body) }
    func lastSequence(sessionId: String) throws -> Int64 { try store.lastSequence(sessionId: sessionId) }
}

/// A clock the test moves.
final class ManualClock: Sendable {
    private let time = Mutex(Fixtures.t0)
    var now: Timestamp { time.withLock { $0 } }
    func advance(_ ms: Int64) { time.withLock { $0 = $0 + Milliseconds(ms) } }
}

/// The owner's own guarantees, beyond the repository contract (which StoreContractTests runs
/// against `.owner`): answers wait for durability, group commit, undo of a failed batch,
/// eviction of ended sessions, timers fired exactly once, recovery.
@Suite("Partition owner: memory, durability and timers")
struct PartitionOwnerTests {
    static let admin = Actor.admin("ops")
    static let service = Actor.service("web")

    /// A channel with a 1-minute customer inactivity timeout and a 10-minute auto-end, one rep.
    static func setUp(_ owner: PartitionOwner, clock: ManualClock) throws {
        try owner.performAndWait { state in
            var repo: any SessionRepository = state
            var engine = SessionEngine()
            _ = try engine.createChannel(
                Channel(id: "web", type: .enhancedWebChatV2, customerInactivityTimeout: Milliseconds(60_000),
                        inactiveAutoEndAfter: Milliseconds(600_000)),
                by: admin, at: clock.now, in: &repo)
            _ = try engine.createRep(id: "r1", displayName: "R1", capacity: 10, permissions: Set(Permission.allCases),
                                     presence: .available, by: admin, at: clock.now, in: &repo)
        }
    }

    static func post(_ owner: PartitionOwner, conversation: String, message: String, at now: Timestamp) throws -> Session {
        try owner.performAndWait { state in
            var repo: any SessionRepository = state
            var engine = SessionEngine()
            return try engine.postCustomerMessage(
                IncomingMessage(messageId: message, text: "hello"), to: .conversation(id: conversation, channelId: "web"),
                by: service, at: now, in: &repo).session
        }
    }

    /// A command posting a customer message to `conversation` on "web", returning the session id.
    static func postCommand(_ conversation: String, _ message: String, _ clock: ManualClock) -> @Sendable (PartitionState) throws -> String {
        { state in
            var repo: any SessionRepository = state
            var engine = SessionEngine()
            return try engine.postCustomerMessage(
                IncomingMessage(messageId: message, text: "hi"), to: .conversation(id: conversation, channelId: "web"),
                by: service, at: clock.now, in: &repo).session.id
        }
    }

    static func durableSession(_ store: SQLiteStore, _ id: String) throws -> Session? {
        try store.read { (repo: SQLiteRepository) in try repo.session(id: id) }
    }

    @Test("A caller that may lead writes the batch its command starts before perform returns; one arriving meanwhile joins the next batch and does not block")
    func leaderCommit() throws {
        try withStore(durability: .full) { store, _ in
            let journal = ControlledJournal(store)
            let clock = ManualClock()
            let owner = try PartitionOwner(journal: journal, now: { clock.now })
            try Self.setUp(owner, clock: clock)
            let batchesBefore = journal.batchSizes.count
            let (entered, release) = journal.holdNextCommit()
            let leaderReturned = DispatchSemaphore(value: 0)
            let answers = DispatchGroup()
            answers.enter()
            DispatchQueue.global().async {
                owner.perform(mayLead: true, Self.postCommand("c0", "m0", clock), completion: { _ in answers.leave() })
                leaderReturned.signal()
            }
            entered.wait()  // the leader's batch is being written, and held
            #expect(leaderReturned.wait(timeout: .now() + .milliseconds(100)) == .timedOut, "the leader writes before perform returns")
            // A batch is in flight: this command waits for the next one, and perform returns at once.
            answers.enter()
            owner.perform(mayLead: true, Self.postCommand("c1", "m1", clock), completion: { _ in answers.leave() })
            #expect(answers.wait(timeout: .now() + .milliseconds(100)) == .timedOut)
            release()
            #expect(answers.wait(timeout: .now() + .seconds(60)) == .success)
            #expect(leaderReturned.wait(timeout: .now() + .seconds(60)) == .success)
            #expect(journal.batchSizes.count - batchesBefore == 2, "\(journal.batchSizes)")
            for id in ["c0", "c1"] {
                #expect(try store.read { (repo: SQLiteRepository) in try repo.openSession(conversationId: id) } != nil)
            }
        }
    }

    @Test("A leader whose batch fails answers with the error, memory is undone, and stop() waits for a held leader")
    func leaderCommitFails() throws {
        try withStore(durability: .full) { store, _ in
            let journal = ControlledJournal(store)
            let clock = ManualClock()
            let owner = try PartitionOwner(journal: journal, now: { clock.now })
            try Self.setUp(owner, clock: clock)
            journal.failNextCommit()
            let result = Mutex<Result<String, any Error>?>(nil)
            owner.perform(mayLead: true, Self.postCommand("lost", "m1", clock), completion: { r in result.withLock { $0 = r } })
            // The leader wrote (and failed) before perform returned, and was answered then.
            switch result.withLock({ $0 }) {
            case .failure(let error)?: #expect(error is ControlledJournal.InjectedFailure, "\(error)")
            case .success(let id)?: Issue.record("\(id) was answered OK from a failed batch")
            case nil: Issue.record("the leader's command was not answered when perform returned")
            }
            let (open, rep) = try owner.performAndWait(readOnly: true) { state in
                (try state.openSession(conversationId: "lost"), try state.rep(id: "r1"))
            }
            #expect(open == nil)
            #expect(rep?.usedCapacity == 0)

            // stop() while a leader's commit is held: it returns only after that batch is durable.
            let (entered, release) = journal.holdNextCommit()
            let answered = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                owner.perform(mayLead: true, Self.postCommand("kept", "m2", clock), completion: { r in
                    if case .success = r { answered.signal() }
                })
            }
            entered.wait()
            let stopped = DispatchSemaphore(value: 0)
            DispatchQueue.global().async { owner.stop(); stopped.signal() }
            #expect(stopped.wait(timeout: .now() + .milliseconds(200)) == .timedOut, "stop() returned with a batch in flight")
            release()
            #expect(stopped.wait(timeout: .now() + .seconds(60)) == .success)
            #expect(answered.wait(timeout: .now() + .seconds(60)) == .success)
            #expect(try store.read { (repo: SQLiteRepository) in try repo.openSession(conversationId: "kept") } != nil)
        }
    }

    @Test("An answer waits until its batch is durable; a read waits for the change it saw; waiting commands share one batch")
    func answersWaitForDurability() throws {
        try withStore(durability: .full) { store, _ in
            let journal = ControlledJournal(store)
            let clock = ManualClock()
            let owner = try PartitionOwner(journal: journal, now: { clock.now })
            try Self.setUp(owner, clock: clock)

            let (entered, release) = journal.holdNextCommit()
            let answered = Mutex<[String]>([])
            let allDone = DispatchGroup()
            for i in 0..<5 {
                allDone.enter()
                owner.perform({ state -> String in
                    var repo: any SessionRepository = state
                    var engine = SessionEngine()
                    return try engine.postCustomerMessage(
                        IncomingMessage(messageId: "m\(i)", text: "hi"), to: .conversation(id: "c\(i)", channelId: "web"),
                        by: Self.service, at: clock.now, in: &repo).session.id
                }, completion: { result in
                    if case .success(let id) = result { answered.withLock { $0.append(id) } }
                    allDone.leave()
                })
                if i == 0 { entered.wait() }  // the first batch is now being written, and held
            }
            // A read that saw the first (held) batch or the open one is not answered either.
            allDone.enter()
            owner.perform(readOnly: true, { state in try state.sessions(matching: SessionFilter(), after: nil, limit: 100).count },
                          completion: { result in
                              if case .success(let n) = result { answered.withLock { $0.append("read:\(n)") } }
                              allDone.leave()
                          })
            // Nothing is answered while the first batch is held (bounded wait: the check must fail, not hang).
            #expect(allDone.wait(timeout: .now() + .milliseconds(300)) == .timedOut)
            #expect(answered.withLock { $0 }.isEmpty)
            release()
            #expect(allDone.wait(timeout: .now() + .seconds(60)) == .success)
            let all = answered.withLock { $0 }
            #expect(all.count == 6)
            #expect(all.contains("read:5"), "\(all)")
            // Every answered session is in the store.
            for id in all where !id.hasPrefix("read:") { #expect(try Self.durableSession(store, id) != nil) }
            // Group commit: the four writes that arrived while the first batch was held went out together.
            let sizes = journal.batchSizes
            #expect(sizes.suffix(2) == [2, 8], "events per batch: \(sizes)")  // created+routed each
        }
    }

    @Test("A batch that fails is undone in memory with every command after it, and they all get the error")
    func failedBatchIsUndone() throws {
        try withStore(durability: .full) { store, _ in
            let journal = ControlledJournal(store)
            let clock = ManualClock()
            let owner = try PartitionOwner(journal: journal, now: { clock.now })
            try Self.setUp(owner, clock: clock)
            let kept = try Self.post(owner, conversation: "kept", message: "m0", at: clock.now)

            journal.failNextCommit()
            let (entered, release) = journal.holdNextCommit()
            let results = Mutex<[Result<String, any Error>]>([])
            let done = DispatchGroup()
            for i in 1...3 {
                done.enter()
                owner.perform({ state -> String in
                    var repo: any SessionRepository = state
                    var engine = SessionEngine()
                    return try engine.postCustomerMessage(
                        IncomingMessage(messageId: "m\(i)", text: "hi"), to: .conversation(id: "lost\(i)", channelId: "web"),
                        by: Self.service, at: clock.now, in: &repo).session.id
                }, completion: { r in results.withLock { $0.append(r) }; done.leave() })
                if i == 1 { entered.wait() }
            }
            release()
            #expect(done.wait(timeout: .now() + .seconds(60)) == .success)
            let all = results.withLock { $0 }
            #expect(all.count == 3)
            for r in all { if case .success(let id) = r { Issue.record("\(id) was answered OK from a failed batch") } }

            // Memory is back where the store is: the rep's capacity, the sessions, the message ids.
            let (rep, open, retried) = try owner.performAndWait(readOnly: true) { state in
                (try state.rep(id: "r1"), try state.openSession(conversationId: "lost1"), try state.message(channelId: "web", id: "m1"))
            }
            #expect(rep?.usedCapacity == 1)
            #expect(open == nil)
            #expect(retried == nil)
            let stored = try store.read { (repo: SQLiteRepository) in try repo.rep(id: "r1") }
            #expect(stored == rep)
            // The same calls succeed once the store works again, with the same ids.
            let again = try Self.post(owner, conversation: "lost1", message: "m1", at: clock.now)
            #expect(again.status == .active)
            #expect(try Self.durableSession(store, kept.id)?.status == .active)
        }
    }

    @Test("An ended session leaves memory once its end is durable, and is still read from the store")
    func endedSessionsLeaveMemory() throws {
        try withStore(durability: .processCrash) { store, _ in
            let clock = ManualClock()
            let owner = try PartitionOwner(journal: store, now: { clock.now })
            try Self.setUp(owner, clock: clock)
            let session = try Self.post(owner, conversation: "c1", message: "m1", at: clock.now)
            #expect(try owner.performAndWait(readOnly: true) { $0.sessionCount } == 1)
            let ended = try owner.performAndWait { state in
                var repo: any SessionRepository = state
                return try SessionEngine().endSession(sessionId: session.id, by: Self.admin, at: clock.now, in: &repo).session
            }
            #expect(ended.status == .ended)
            // performAndWait returned: the batch is durable and settled.
            #expect(try owner.performAndWait(readOnly: true) { $0.sessionCount } == 0)
            let read = try owner.performAndWait(readOnly: true) { state in try state.session(id: session.id) }
            #expect(read == ended)
            // The conversation opens a new session; a retried message id on the ended one is a replay.
            let replay = try Self.post(owner, conversation: "c1", message: "m1", at: clock.now)
            #expect(replay.id == session.id)
            let next = try Self.post(owner, conversation: "c1", message: "m2", at: clock.now)
            #expect(next.id != session.id && next.status == .active)
        }
    }

    @Test("Timers fire at their deadline exactly once, and overdue ones fire once after a restart")
    func timersFireOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("sessions.sqlite")
        let clock = ManualClock()
        var sessionId = ""
        do {
            let store = try SQLiteStore(path: path)
            let owner = try PartitionOwner(journal: store, now: { clock.now })
            try Self.setUp(owner, clock: clock)
            let session = try Self.post(owner, conversation: "c1", message: "m1", at: clock.now)
            sessionId = session.id
            // The rep answers: the customer inactivity timer (1 minute) starts.
            _ = try owner.performAndWait { state in
                var repo: any SessionRepository = state
                return try SessionEngine().postRepMessage(IncomingMessage(messageId: "r1", text: "hi"), sessionId: session.id,
                                                          by: .rep("r1"), at: clock.now, in: &repo)
            }
            clock.advance(59_999)
            try await owner.fireDueNow()
            #expect(try Self.durableSession(store, session.id)?.status == .active)
            clock.advance(1)
            try await owner.fireDueNow()
            try await owner.fireDueNow()
            #expect(try Self.durableSession(store, session.id)?.status == .inactive)
            owner.stop()
        }
        // Down for an hour: the auto-end (10 minutes after INACTIVE) is overdue at start.
        clock.advance(3_600_000)
        let store = try SQLiteStore(path: path)
        let owner = try PartitionOwner(journal: store, now: { clock.now })
        try await owner.fireDueNow()
        try await owner.fireDueNow()
        let events = try store.read { (repo: SQLiteRepository) in try repo.events(sessionId: sessionId, afterSequence: 0, limit: 100) }
        #expect(events.map(\.to) == [.waiting, .active, .inactive, .ended])
        #expect(events.filter { $0.reason == .customerInactivityTimeout }.count == 1)
        #expect(events.filter { $0.reason == .autoEnded }.count == 1)
        owner.stop()
    }

    @Test("Restart loads the partition: open sessions, queue order, capacity, cursors and message ids")
    func restartLoadsThePartition() throws {
        try withStore(durability: .processCrash) { store, _ in
            let clock = ManualClock()
            var before: (Rep?, [Session], Int64)
            do {
                let owner = try PartitionOwner(journal: store, now: { clock.now })
                try Self.setUp(owner, clock: clock)
                // Capacity 10: twelve conversations, ten routed, two waiting.
                for i in 0..<12 {
                    clock.advance(1)
                    _ = try Self.post(owner, conversation: "c\(i)", message: "m\(i)", at: clock.now)
                }
                before = try owner.performAndWait(readOnly: true) { s in
                    (try s.rep(id: "r1"), try s.waitingSessions(after: nil, limit: 10), s.headCursor)
                }
                owner.stop()
            }
            let reopened = try SQLiteStore(path: store.path, options: store.options)
            let owner = try PartitionOwner(journal: reopened, now: { clock.now })
            let after = try owner.performAndWait(readOnly: true) { s in
                (try s.rep(id: "r1"), try s.waitingSessions(after: nil, limit: 10), s.headCursor)
            }
            #expect(after.0 == before.0 && after.0?.usedCapacity == 10)
            #expect(after.1.map(\.id) == before.1.map(\.id) && after.1.count == 2)
            #expect(after.2 == before.2 && after.2 == 22)
            // A retried message id is known after the restart (its fingerprint was loaded).
            let replay = try Self.post(owner, conversation: "c3", message: "m3", at: clock.now)
            #expect(try owner.performAndWait(readOnly: true) { $0.headCursor } == 22)
            #expect(replay.status == .active)
        }
    }

    @Test("A savepoint takes back one step of a command (as a failed timer in a slice); the rest of it stands")
    func savepoints() throws {
        try withStore(durability: .processCrash) { store, _ in
            let owner = try PartitionOwner(journal: store, now: { Fixtures.t0 })
            try owner.performAndWait { state in
                var repo: any SessionRepository = state
                try repo.insertChannel(Fixtures.plainChannel("kept"))
                let savepoint = state.savepoint()
                try repo.insertChannel(Fixtures.plainChannel("dropped"))
                try repo.upsertRep(Fixtures.rep("dropped-rep"))
                state.rollback(to: savepoint)
                try repo.insertChannel(Fixtures.plainChannel("after"))
            }
            let inMemory = try owner.performAndWait(readOnly: true) { state in
                (try state.channels(after: nil, limit: 10).map(\.id), try state.rep(id: "dropped-rep"))
            }
            #expect(inMemory.0 == ["after", "kept"])
            #expect(inMemory.1 == nil)
            let stored = try store.read { (repo: SQLiteRepository) in try repo.channels(after: nil, limit: 10).map(\.id) }
            #expect(stored == ["after", "kept"])
        }
    }
}
