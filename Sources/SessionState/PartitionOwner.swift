public import Dispatch
import Synchronization
public import SessionCore
public import SessionStorage

/// The single writer of one partition: a serial executor that owns the partition's state in
/// memory and a group-committed journal behind it.
///
/// Every command (a write or a read) runs on the owner's queue against ``PartitionState``. A
/// command that changed something joins the open batch; while one batch is being made durable
/// (one store transaction, fsynced under `--durability full`), the next one fills. A command is
/// answered only once the batch holding its changes is durable; a command that changed nothing
/// (a read, a replayed retry, a refused change) is answered once everything it could have seen is
/// durable, so no answer ever shows a change that a crash could still take back. If a batch fails,
/// its commands and every later one are undone in memory, newest first, and answered with the
/// error: memory never runs ahead of the store.
///
/// Timers live in memory too: the owner fires due sessions itself, each as a command of its own,
/// at the earliest deadline (re-checked at least once a second, so a test-clock advance is seen).
public final class PartitionOwner: @unchecked Sendable {
    public typealias Completion<T> = @Sendable (Result<T, any Error>) -> Void

    /// The owner's serial executor: everything below is touched only on it.
    public let queue: DispatchQueue
    private let journalQueue: DispatchQueue
    private let state: PartitionState
    private let journal: any PartitionJournal
    private let now: @Sendable () -> Timestamp
    private let onDurable: @Sendable (JournalBatch) -> Void
    private let onTimerError: @Sendable (any Error) -> Void

    private let ownerKey = DispatchSpecificKey<ObjectIdentifier>()
    private var open = Pending()
    private var inFlight: Pending?
    private var timer: (any DispatchSourceTimer)?
    private var timerDeadline: Timestamp?
    private var stopped = false

    /// Timers fired per turn of the queue before other commands get their turn.
    static let timerSlice = 256
    /// The longest the owner sleeps before looking at the clock again.
    static let maxTimerSleepMillis: Int64 = 1000

    private final class FirstError: Sendable {
        private let error = Mutex<(any Error)?>(nil)
        func set(_ e: any Error) { error.withLock { if $0 == nil { $0 = e } } }
        func get() -> (any Error)? { error.withLock { $0 } }
    }

    private struct Pending {
        var batch = JournalBatch()
        var records: [PartitionState.CommandRecord] = []
        var waiters: [@Sendable (Result<Void, any Error>) -> Void] = []
        var hasChanges: Bool { !records.isEmpty }
    }

    /// Loads the partition from `journal` (on the calling thread) and starts its timers.
    /// `onDurable` is called on the owner's queue with each batch once it is durable, in order.
    public init(
        journal: any PartitionJournal, label: String = "partition",
        now: @escaping @Sendable () -> Timestamp,
        onDurable: @escaping @Sendable (JournalBatch) -> Void = { _ in },
        onTimerError: @escaping @Sendable (any Error) -> Void = { _ in }
    ) throws {
        let snapshot = try journal.loadPartition()
        self.journal = journal
        self.state = PartitionState(snapshot: snapshot, journal: journal)
        self.queue = DispatchQueue(label: "sessiond.owner.\(label)")
        self.journalQueue = DispatchQueue(label: "sessiond.journal.\(label)")
        self.now = now
        self.onDurable = onDurable
        self.onTimerError = onTimerError
        queue.setSpecific(key: ownerKey, value: ObjectIdentifier(self))
        if !journal.settlesOnCommit {
            // The tables catch up later: memory answers for what they do not hold until then.
            journal.onSettled { [weak self] batches in
                guard let self else { return }
                self.queue.async { for batch in batches { self.state.settle(batch) } }
            }
        }
        queue.async { self.armTimer() }
    }

    /// Runs `body` on the owner against the partition's state; `completion` gets its result once
    /// it is safe to show (see the type's documentation). A body that throws changes nothing.
    ///
    /// When no other command is queued, the command runs on the calling thread (`queue.sync` on
    /// the idle queue: no thread is woken for it); otherwise it is queued behind the others, and
    /// the owner's thread, already running, takes it in turn. The caller never waits behind a
    /// queue of commands.
    ///
    /// `mayLead`: the caller's thread may also write the batch its command starts, blocking for
    /// one append (and fdatasync) before `perform` returns (see ``kick()``). Only for a caller
    /// whose thread may wait that long, never a task's: a connection's queue answering a deferred
    /// call whose answer waits for that append anyway and behind which nothing of its connection
    /// waits (`RPCServerContext.isSoleCall`: calls pipelined on one connection would otherwise be
    /// written one batch each, the connection not read while its thread writes).
    ///
    /// Inlined into the caller, where `T` is known, so that the owner's own path is not generic:
    /// unspecialized, every command looked up the run-time metadata of `Result<T, _>` and of its
    /// pending answer (~2% of the instructions per state change).
    @inlinable
    public func perform<T: Sendable>(
        readOnly: Bool = false, mayLead: Bool = false,
        _ body: @escaping @Sendable (PartitionState) throws -> T, completion: @escaping Completion<T>
    ) {
        let slot = ResultSlot<T>()
        performErased(readOnly: readOnly, mayLead: mayLead, { state in slot.value = try body(state) }, { durable in
            completion(durable.map { slot.value! })
        })
    }

    /// Where an erased command leaves its value for its completion (written before, read after).
    @usableFromInline
    final class ResultSlot<T>: @unchecked Sendable {
        @usableFromInline var value: T?
        @usableFromInline init() {}
    }

    @usableFromInline
    func performErased(
        readOnly: Bool, mayLead: Bool, _ body: @escaping @Sendable (PartitionState) throws -> Void, _ completion: @escaping Completion<Void>
    ) {
        if submitted.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == 1,
           DispatchQueue.getSpecific(key: ownerKey) != ObjectIdentifier(self) {
            // The owner was idle: if this command starts a batch, this thread writes it too
            // (a leader commit), instead of waking the journal thread and being woken by it.
            let lead = queue.sync { () -> Commit? in
                leaderMayCommit = mayLead
                run(readOnly: readOnly, body, completion)
                leaderMayCommit = false
                defer { leaderCommit = nil }
                return leaderCommit
            }
            submitted.wrappingSubtract(1, ordering: .releasing)
            if let lead { write(lead) }
        } else {
            queue.async {
                self.run(readOnly: readOnly, body, completion)
                self.submitted.wrappingSubtract(1, ordering: .releasing)
            }
        }
    }

    /// Batches made durable, the changes in them, and the time their appends took (fsync
    /// included), for GET /metrics.
    public struct JournalStats: Sendable {
        public var batches: Int
        public var changes: Int
        public var commitSeconds: Double
    }
    private let batchesWritten = Atomic<Int>(0)
    private let changesWritten = Atomic<Int>(0)
    private let commitNanos = Atomic<Int>(0)
    public var journalStats: JournalStats {
        JournalStats(batches: batchesWritten.load(ordering: .relaxed), changes: changesWritten.load(ordering: .relaxed),
                     commitSeconds: Double(commitNanos.load(ordering: .relaxed)) / 1e9)
    }

    /// Commands handed to ``perform(readOnly:_:completion:)`` and not yet run.
    private let submitted = Atomic<Int>(0)

    /// `perform` for async callers.
    @inlinable
    public func perform<T: Sendable>(readOnly: Bool = false, _ body: @escaping @Sendable (PartitionState) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            perform(readOnly: readOnly, body) { continuation.resume(with: $0) }
        }
    }

    /// The blocking form, for tools and tests (never for a request path): runs `body` on the
    /// owner and waits until its result may be shown.
    public func performAndWait<T>(readOnly: Bool = false, _ body: (PartitionState) throws -> T) throws -> T {
        if DispatchQueue.getSpecific(key: ownerKey) == ObjectIdentifier(self) { throw PartitionStateError.nestedCommand }
        let done = DispatchSemaphore(value: 0)
        let result = ResultBox<T>()
        withoutActuallyEscaping(body) { body in
            let unchecked = UncheckedBody(body: body)
            queue.sync {
                run(readOnly: readOnly, { state in try unchecked.body(state) }, { r in
                    result.value = r
                    done.signal()
                })
            }
        }
        done.wait()
        return try result.value!.get()
    }

    private final class ResultBox<T>: @unchecked Sendable { var value: Result<T, any Error>? }
    private struct UncheckedBody<T>: @unchecked Sendable { let body: (PartitionState) throws -> T }

    /// Stops the timers; commands already queued still run. Waits for in-flight batches.
    public func stop() {
        let group = DispatchGroup()
        group.enter()
        queue.async {
            self.stopped = true
            self.timer?.cancel()
            self.timer = nil
            self.whenIdle { group.leave() }
        }
        group.wait()
    }

    private var idleWaiters: [() -> Void] = []

    private func whenIdle(_ done: @escaping () -> Void) {
        if inFlight == nil && !open.hasChanges { done() } else { idleWaiters.append(done) }
    }

    // MARK: Commands

    private func run<T>(readOnly: Bool = false, _ body: (PartitionState) throws -> T, _ completion: @escaping Completion<T>) {
        // A stopped owner's memory may be behind another owner's writes: it answers nothing.
        guard !stopped else { return completion(.failure(PartitionStateError.stopped)) }
        state.begin(readOnly: readOnly)
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try body(state))
        } catch {
            state.rollback()
            outcome = .failure(error)
        }
        let answer = Outcome(result: outcome, completion: completion)
        if case .success = outcome {
            let record = state.commit()
            if !record.changes.isEmpty {
                add(record)
                open.waiters.append(answer.whenDurable)
                kick()
                armTimer()
                return
            }
        }
        // Nothing changed: answer once what it saw is durable.
        if open.hasChanges {
            open.waiters.append(answer.whenDurable)
        } else if inFlight != nil {
            // Joins the next batch's answer: it may have seen the batch being written.
            open.waiters.append(answer.whenDurable)
        } else {
            answer.whenDurable(.success(()))
        }
    }

    /// A command's result, held until it may be shown (touched on the owner's queue only).
    private struct Outcome<T>: @unchecked Sendable {
        let result: Result<T, any Error>
        let completion: Completion<T>
        func whenDurable(_ durable: Result<Void, any Error>) { completion(durable.flatMap { result }) }
    }

    private func add(_ record: PartitionState.CommandRecord) {
        for change in record.changes {
            switch change {
            case .channel(let c): open.batch.record(c)
            case .rep(let r): open.batch.record(r)
            case .session(let s): open.batch.record(s)
            case .event(let e): open.batch.record(e)
            case .message(let m): open.batch.record(m)
            case let .setting(key, value): open.batch.record(setting: key, value)
            }
        }
        open.records.append(record)
    }

    /// The batch being made durable, as its writer needs it.
    private struct Commit: @unchecked Sendable {
        let batch: JournalBatch
        let waiters: [@Sendable (Result<Void, any Error>) -> Void]
        let changeCount: Int
    }

    /// Set while a command runs on the thread of a caller that found the owner idle: a batch it
    /// starts is left in `leaderCommit` for that thread to write once it has left the queue.
    private var leaderMayCommit = false
    private var leaderCommit: Commit?
    /// Commands in the batch written before: only a partition that commits one command at a
    /// time (no group forms) is led; at 8x8 leaders blocked for their fdatasync cost throughput.
    private var previousBatchCommands = 0

    /// Starts writing the open batch unless one is already being written (group commit): on the
    /// journal's queue, or by the leader (`perform(mayLead: true)` on an idle owner). A leader thread
    /// blocks for the one append (and fdatasync) it leads, and only while batches carry one
    /// command each: at 1x1 that saves two thread wake-ups per call (to the journal thread and
    /// back to the connection's; 8.1 -> 5.4 context switches per state change); once commands
    /// group, the journal thread writes every batch.
    private func kick() {
        guard inFlight == nil, open.hasChanges else { return }
        let writing = open
        open = Pending()
        inFlight = writing
        let commit = Commit(
            batch: writing.batch, waiters: writing.waiters,
            changeCount: writing.records.reduce(0) { $0 + $1.changes.count })
        let alone = writing.records.count == 1 && previousBatchCommands <= 1
        previousBatchCommands = writing.records.count
        if leaderMayCommit, alone, leaderCommit == nil {
            leaderCommit = commit
            return
        }
        journalQueue.async { self.write(commit) }
    }

    /// Makes the in-flight batch durable and answers it; on the journal's queue or a leader's
    /// thread, never the owner's (one batch is in flight at a time, so writes never overlap).
    private func write(_ commit: Commit) {
        let started = DispatchTime.now().uptimeNanoseconds
        let result = Result<Void, any Error> { try journal.commit(commit.batch) }
        if case .success = result {
            commitNanos.wrappingAdd(Int(DispatchTime.now().uptimeNanoseconds - started), ordering: .relaxed)
            batchesWritten.wrappingAdd(1, ordering: .relaxed)
            changesWritten.wrappingAdd(commit.changeCount, ordering: .relaxed)
        }
        // The bookkeeping (settle, publish to watchers, the next batch) is on the owner's
        // queue before any answer goes out, so a call made after an answer sees it done:
        // run right here when no command is waiting (no thread woken; the owner never waits
        // for another queue, so this cannot deadlock), else queued behind the commands.
        if submitted.load(ordering: .acquiring) == 0 {
            queue.sync { written(result) }
        } else {
            queue.async { self.written(result) }
        }
        // Durable: answer from here, without waiting for the owner's turn (a failure is
        // answered there, after memory is undone).
        if case .success = result { for waiter in commit.waiters { waiter(.success(())) } }
    }

    private func written(_ result: Result<Void, any Error>) {
        guard let done = inFlight else { preconditionFailure("a batch was written that was not in flight") }
        inFlight = nil
        switch result {
        case .success:
            if journal.settlesOnCommit { state.settle(done.batch) }
            onDurable(done.batch)
            if !open.hasChanges {
                // Only commands that changed nothing wait here: what they saw is durable now.
                let waiters = open.waiters
                open.waiters = []
                for waiter in waiters { waiter(.success(())) }
            }
            kick()
        case .failure(let error):
            // Later commands built on the failed ones: take all of them back, newest first.
            for record in open.records.reversed() { state.revert(record) }
            for record in done.records.reversed() { state.revert(record) }
            let waiters = done.waiters + open.waiters
            open = Pending()
            for waiter in waiters { waiter(.failure(error)) }
            // Timers that were fired in these batches are due again: not before a pause.
            if !retryBackoff {
                retryBackoff = true
                queue.asyncAfter(deadline: .now() + .milliseconds(Int(Self.maxTimerSleepMillis))) {
                    self.retryBackoff = false
                    self.armTimer()
                }
            }
        }
        armTimer()
        if inFlight == nil && !open.hasChanges {
            let waiters = idleWaiters
            idleWaiters = []
            for waiter in waiters { waiter() }
        }
    }

    // MARK: Timers

    private var retryBackoff = false

    /// A slice of due timers was fired and the next is queued: no timer source is needed meanwhile
    /// (each command's `armTimer` made and cancelled one per slice).
    private var firingBacklog = false

    private func armTimer() {
        guard !stopped, !retryBackoff, !firingBacklog else { return }
        guard let next = state.nextDeadline else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if timer != nil, let scheduled = timerDeadline, scheduled <= next { return }
        timer?.cancel()
        let delay = max(0, min(next.millisecondsSinceEpoch - now().millisecondsSinceEpoch, Self.maxTimerSleepMillis))
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + .milliseconds(Int(delay)), leeway: .milliseconds(Int(min(10, delay / 10 + 1))))
        source.setEventHandler { [weak self] in self?.timerFired() }
        timer = source
        timerDeadline = next
        source.resume()
    }

    private func timerFired() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        guard !stopped else { firingBacklog = false; return }
        let at = now()
        let due = state.takeDue(at: at, limit: Self.timerSlice)
        // No timer source while the slice's own command runs (its `armTimer` would make one, and
        // resuming a source wakes Dispatch's manager thread, which takes the core from the owner).
        firingBacklog = true
        fire(due.map(\.id), at: at) { [onTimerError] result in
            if case .failure(let error) = result { onTimerError(error) }
        }
        firingBacklog = false
        // A fire that threw left its session unchanged and due: put it back, and wait a while
        // before trying again (a store that fails every batch must not spin the owner).
        var failed = false
        for fired in due where state.rearmIfDue(fired, at: at) { failed = true }
        if failed {
            retryBackoff = true
            queue.asyncAfter(deadline: .now() + .milliseconds(Int(Self.maxTimerSleepMillis))) {
                self.retryBackoff = false
                self.armTimer()
            }
        } else if due.count == Self.timerSlice {
            // More may be due: let queued commands run first, then continue.
            firingBacklog = true
            queue.async { self.timerFired() }
        } else {
            armTimer()
        }
    }

    /// Fires `due` as one command (one journal entry, one answer), each session under its own
    /// savepoint: a fire that throws is taken back alone and reported, the others stand.
    private func fire(_ due: [String], at: Timestamp, _ completion: @escaping Completion<Void>) {
        guard !due.isEmpty else { return }
        run({ state -> [String] in
            var repo = state
            let engine = SessionEngine()
            var failures: [String] = []
            // One store read for the sequences of sessions not changed since start-up, not one per
            // fire. Only a shortcut: if it fails, each fire reads its own and reports its error.
            try? state.prefetchLastSequences(due)
            for sessionId in due {
                let savepoint = state.savepoint()
                do {
                    _ = try engine.fireTimer(sessionId: sessionId, at: at, in: &repo)
                } catch {
                    state.rollback(to: savepoint)
                    failures.append("\(sessionId): \(error)")
                }
            }
            return failures
        }, { result in
            switch result {
            case .success(let failures) where failures.isEmpty: completion(.success(()))
            case .success(let failures): completion(.failure(TimerFailures(failures: failures)))
            case .failure(let error): completion(.failure(error))
            }
        })
    }

    struct TimerFailures: Error, CustomStringConvertible {
        let failures: [String]
        var description: String { "\(failures.count) timer(s) failed: \(failures.prefix(3).joined(separator: "; "))" }
    }

    /// Fires every timer due now (after a test-clock advance) and returns once the transitions
    /// are durable; the first failure, if any, is thrown.
    public func fireDueNow() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                let at = self.now()
                let firstError = FirstError()
                var fired: [PartitionState.DueSession] = []
                while true {
                    let due = self.state.takeDue(at: at, limit: Self.timerSlice)
                    if due.isEmpty { break }
                    fired += due
                    self.fire(due.map(\.id), at: at) { result in
                        if case .failure(let error) = result { firstError.set(error) }
                    }
                }
                // A fire that threw left its deadline: back in the heap, for the next turn.
                for session in fired { self.state.rearmIfDue(session, at: at) }
                self.armTimer()
                // Everything fired is in the open or in-flight batch: answer when it is durable.
                self.run({ _ in () }, { result in
                    if let error = firstError.get() { continuation.resume(throwing: error) } else { continuation.resume(with: result) }
                })
            }
        }
    }
}
