internal import Dispatch
#if canImport(Glibc)
internal import Glibc
#endif
public import SessionCore
import Synchronization

/// The embedded store behind a state owner: batches are made durable by appending them to a
/// `FileJournal` (one `write` and one `fdatasync` per batch), and written to the SQLite tables
/// later, many batches in one transaction (a session changed by several of them written once),
/// by a background materializer. The tables stay the schema that `sqlite3` and backups see; they
/// lag the journal by at most a fraction of a second while sessiond runs and hold everything
/// after a clean stop.
///
/// The sequence of the last batch written to the tables is stored with them (setting
/// `journal_applied_seq`, in the same transaction), so recovery applies exactly the journal
/// records after it, and journal files are deleted once the tables hold all of their records.
public final class JournaledSQLiteStore: PartitionJournal, @unchecked Sendable {
    public let store: SQLiteStore
    private let journal: FileJournal
    private let materializerQueue = DispatchQueue(label: "sessiond.materializer")
    private let state = Mutex(State())
    /// How long a durable batch may wait before the materializer writes it to the tables.
    public var materializeDelayMillis = 1000

    static let appliedKey = "journal_applied_seq"

    private struct State {
        var pending: [(sequence: UInt64, batch: JournalBatch)] = []
        var scheduled = false
        var settled: (@Sendable ([JournalBatch]) -> Void)?
        var failure: (any Error)?
        var onFailure: (@Sendable (any Error) -> Void)?
    }

    /// Called once when the journal or the materializer fails (the store then refuses every batch).
    public func onFailure(_ handler: @escaping @Sendable (any Error) -> Void) {
        state.withLock { $0.onFailure = handler }
    }

    private func fail(_ error: any Error) {
        let handler = state.withLock { s -> (@Sendable (any Error) -> Void)? in
            guard s.failure == nil else { return nil }
            s.failure = error
            return s.onFailure
        }
        handler?(error)
    }

    /// `directory` holds the journal files (the data directory); `syncs`: fdatasync every append.
    public init(store: SQLiteStore, directory: String, syncs: Bool) {
        self.store = store
        self.journal = FileJournal(directory: directory, syncs: syncs)
    }

    public var settlesOnCommit: Bool { false }

    public func onSettled(_ handler: @escaping @Sendable ([JournalBatch]) -> Void) {
        state.withLock { $0.settled = handler }
    }

    /// Recovery, then the load: the journal records after the tables' applied sequence are
    /// written to the tables (one transaction), their files removed, and the tables loaded.
    public func loadPartition() throws -> PartitionSnapshot {
        let applied = UInt64(try store.read { (repo: SQLiteRepository) in try repo.setting(Self.appliedKey) } ?? 0)
        let records = try journal.recover(after: applied)
        // The journal must continue the tables exactly: a gap means records were lost (a
        // database restored from an older backup after the journal files of the time between
        // were removed, say); applying the rest would build on state that is not there.
        if let first = records.first, first.sequence != applied + 1 {
            throw FileJournal.Damaged(description:
                "the journal in \(journal.directory) starts at batch \(first.sequence) but the database holds batches up to \(applied) only; restore the journal files of that time, or move them away to start from the database as it is")
        }
        if let last = records.last {
            var merged = JournalBatch()
            for record in records { merged.merge(try JournalCodec.decode(record.payload)) }
            try write(merged, through: last.sequence)
        }
        journal.discard(through: records.last?.sequence ?? applied)
        return try store.loadPartition()
    }

    public func commit(_ batch: JournalBatch) throws {
        guard !batch.isEmpty else { return }
        if let failure = state.withLock({ $0.failure }) { throw failure }
        let sequence: UInt64
        do {
            sequence = try journal.append(JournalCodec.encode(batch))
        } catch {
            // A failed write or fdatasync may have left a torn record or lost pages: appending
            // after it could hide later records from recovery. Refuse everything until a restart.
            fail(error)
            throw error
        }
        let schedule = state.withLock { s -> Bool in
            s.pending.append((sequence, batch))
            if s.scheduled { return false }
            s.scheduled = true
            return true
        }
        if schedule {
            materializerQueue.asyncAfter(deadline: .now() + .milliseconds(materializeDelayMillis)) { self.materialize() }
        }
    }

    /// Moves every journal file of `directory` aside (renamed `*.log.set-aside`): a start that was
    /// told to begin with an empty database must not replay the old one's journal onto it.
    public static func setAsideJournal(in directory: String) -> [String] {
        FileJournal(directory: directory, syncs: false).files().map { file in
            let aside = file.path + ".set-aside"
            _ = rename(file.path, aside)
            return aside
        }
    }

    /// Writes every durable batch not yet in the tables (also called at a clean stop).
    public func flush() throws {
        try materializerQueue.sync { try materializeNow() }
    }

    private func materialize() {
        do {
            try materializeNow()
        } catch {
            // The journal still holds everything: refuse further batches rather than run on.
            fail(error)
        }
    }

    private func materializeNow() throws {
        let (batches, handler) = state.withLock { s -> ([(sequence: UInt64, batch: JournalBatch)], (@Sendable ([JournalBatch]) -> Void)?) in
            defer { s.pending = []; s.scheduled = false }
            return (s.pending, s.settled)
        }
        guard let last = batches.last else { return }
        var merged = JournalBatch()
        for entry in batches { merged.merge(entry.batch) }
        try write(merged, through: last.sequence)
        journal.discard(through: last.sequence)
        handler?(batches.map(\.batch))
    }

    private func write(_ merged: JournalBatch, through sequence: UInt64) throws {
        var withMark = merged
        withMark.record(setting: Self.appliedKey, Int64(sequence))
        try store.commit(withMark)
    }

    /// The journal files, oldest first (for tools and tests).
    public func journalFiles() -> [String] { journal.files().map(\.path) }

    public func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T { try store.readDurable(body) }
    public func lastSequence(sessionId: String) throws -> Int64 { try store.lastSequence(sessionId: sessionId) }
    public func lastSequences(sessionIds: [String]) throws -> [String: Int64] { try store.lastSequences(sessionIds: sessionIds) }
}
