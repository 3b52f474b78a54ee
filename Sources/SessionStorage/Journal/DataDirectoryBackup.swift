internal import CSQLite
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// `sessiond backup FILE`: a consistent copy of a data directory's store while sessiond runs.
///
/// SQLite's online backup copies the tables as of one transaction (they hold every batch up to
/// their `journal_applied_seq`); then the journal records after that sequence, read from the live
/// journal files without touching them, are written into the copy, so it holds every change that
/// was durable when the backup read the journal. If the journal no longer continues the copy
/// (the materializer applied and removed a file in between), the backup starts over. The result
/// is one self-contained SQLite file (no WAL), created 0600 from its first byte; restoring is
/// putting it as `sessions.sqlite` into an empty data directory.
public enum DataDirectoryBackup {
    public struct Result: Sendable {
        /// The last journal batch the copy holds.
        public let sequence: UInt64
        /// Journal records written into the copy after SQLite's backup.
        public let journalRecords: Int
        public let bytes: Int
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func run(dataDirectory: String, to destination: String, attempts: Int = 5) throws -> Result {
        let source = (dataDirectory as NSString).appendingPathComponent("sessions.sqlite")
        guard FileManager.default.fileExists(atPath: source) else {
            throw Failure(description: "no database in \(dataDirectory) (sessions.sqlite)")
        }
        var lastProblem = ""
        for _ in 0..<max(1, attempts) {
            try create(destination)
            do {
                try copyTables(from: source, to: destination)
                guard let (sequence, count) = try applyJournal(dataDirectory, to: destination, problem: &lastProblem) else {
                    removeCopy(destination)
                    continue
                }
                removeSidecars(destination)
                var info = stat()
                let bytes = stat(destination, &info) == 0 ? Int(info.st_size) : 0
                return Result(sequence: sequence, journalRecords: count, bytes: bytes)
            } catch {
                removeCopy(destination)
                throw error
            }
        }
        throw Failure(description: "the journal kept moving under the backup (\(lastProblem)); retry")
    }

    /// Writes the journal records the copy lacks into it; nil if the journal does not continue it.
    /// The store is closed (WAL checkpointed into the file) when this returns.
    private static func applyJournal(_ dataDirectory: String, to destination: String, problem: inout String) throws -> (UInt64, Int)? {
        let store = try SQLiteStore(path: destination)
        let applied = UInt64(try store.read { (repo: SQLiteRepository) in try repo.setting(JournaledSQLiteStore.appliedKey) } ?? 0)
        let records = try FileJournal(directory: dataDirectory, syncs: false).read(after: applied)
        if let first = records.first, first.sequence != applied + 1 {
            problem = "the journal starts at batch \(first.sequence), the copy holds up to \(applied)"
            return nil
        }
        var sequence = applied
        if let last = records.last {
            var merged = JournalBatch()
            for record in records { merged.merge(try JournalCodec.decode(record.payload)) }
            merged.record(setting: JournaledSQLiteStore.appliedKey, Int64(last.sequence))
            try store.commit(merged)
            sequence = last.sequence
        }
        try store.checkpoint()
        return (sequence, records.count)
    }

    /// An empty 0600 file that did not exist before (a backup never overwrites).
    private static func create(_ path: String) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        close(fd)
    }

    private static func removeSidecars(_ path: String) {
        unlink(path + "-wal")
        unlink(path + "-shm")
    }

    private static func removeCopy(_ path: String) {
        unlink(path)
        removeSidecars(path)
    }

    /// SQLite's online backup API: the source read in one read transaction, written to `to`.
    private static func copyTables(from source: String, to destination: String) throws {
        var src: OpaquePointer?
        var dst: OpaquePointer?
        defer { sqlite3_close_v2(src); sqlite3_close_v2(dst) }
        guard sqlite3_open_v2(source, &src, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else {
            throw Failure(description: "cannot open \(source): \(String(cString: sqlite3_errmsg(src)))")
        }
        sqlite3_busy_timeout(src, 5_000)
        guard sqlite3_open_v2(destination, &dst, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else {
            throw Failure(description: "cannot open \(destination): \(String(cString: sqlite3_errmsg(dst)))")
        }
        guard let backup = sqlite3_backup_init(dst, "main", src, "main") else {
            throw Failure(description: "cannot start the backup: \(String(cString: sqlite3_errmsg(dst)))")
        }
        // All pages in one step: one read transaction of the source, so the copy is one state.
        var rc = sqlite3_backup_step(backup, -1)
        while rc == SQLITE_BUSY || rc == SQLITE_LOCKED {
            usleep(10_000)
            rc = sqlite3_backup_step(backup, -1)
        }
        let finish = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE, finish == SQLITE_OK else {
            throw Failure(description: "the backup failed: \(String(cString: sqlite3_errmsg(dst)))")
        }
    }
}
