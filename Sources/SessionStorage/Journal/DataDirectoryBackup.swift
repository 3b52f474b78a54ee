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
/// is one self-contained SQLite file (no WAL) per tenant, created 0600 from its first byte, laid
/// out as a data directory (`sessions.sqlite`, `tenants/<id>/sessions.sqlite`, directories 0700):
/// restoring is starting sessiond on it. Each tenant's copy is one consistent state of that tenant
/// (tenants are independent; the registry and tokens are in the main copy).
public enum DataDirectoryBackup {
    public struct Result: Sendable {
        /// The last journal batch the main copy holds.
        public let sequence: UInt64
        /// Journal records written into the copies after SQLite's backups.
        public let journalRecords: Int
        public let bytes: Int
        /// The tenants copied besides the default one (the main database).
        public let tenants: [String]
    }

    /// Copies the data directory's main database and every tenant's into `destination`, a new
    /// directory laid out like a data directory.
    public static func run(dataDirectory: String, toDirectory destination: String, attempts: Int = 5) throws -> Result {
        guard mkdir(destination, 0o700) == 0 else {
            throw Failure(description: "cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        do {
            return try copyAll(dataDirectory: dataDirectory, into: destination, attempts: attempts)
        } catch {
            // No half backup is left behind to be mistaken for a whole one.
            try? FileManager.default.removeItem(atPath: destination)
            throw error
        }
    }

    private static func copyAll(dataDirectory: String, into destination: String, attempts: Int) throws -> Result {
        let main = try run(dataDirectory: dataDirectory, to: (destination as NSString).appendingPathComponent("sessions.sqlite"), attempts: attempts)
        let root = (dataDirectory as NSString).appendingPathComponent("tenants")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted().filter {
            FileManager.default.fileExists(atPath: ((root as NSString).appendingPathComponent($0) as NSString).appendingPathComponent("sessions.sqlite"))
        }
        var (records, bytes) = (main.journalRecords, main.bytes)
        if !names.isEmpty {
            let tenantsCopy = (destination as NSString).appendingPathComponent("tenants")
            guard mkdir(tenantsCopy, 0o700) == 0 else { throw Failure(description: "cannot create \(tenantsCopy): \(String(cString: strerror(errno)))") }
            for name in names {
                let copyDirectory = (tenantsCopy as NSString).appendingPathComponent(name)
                guard mkdir(copyDirectory, 0o700) == 0 else { throw Failure(description: "cannot create \(copyDirectory): \(String(cString: strerror(errno)))") }
                let one = try run(
                    dataDirectory: (root as NSString).appendingPathComponent(name),
                    to: (copyDirectory as NSString).appendingPathComponent("sessions.sqlite"), attempts: attempts)
                records += one.journalRecords
                bytes += one.bytes
            }
        }
        return Result(sequence: main.sequence, journalRecords: records, bytes: bytes, tenants: names)
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Copies one database of `dataDirectory` (its `sessions.sqlite` and journal) into the file `destination`.
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
                return Result(sequence: sequence, journalRecords: count, bytes: bytes, tenants: [])
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
