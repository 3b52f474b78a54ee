internal import Dispatch
internal import Foundation
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The embedded SQLite session store: one database file in WAL mode, one
/// writer connection and a pool of read connections.
///
/// - `write` runs its closure inside `BEGIN IMMEDIATE … COMMIT` on the writer
///   connection, on one serial queue: writes are serialized, a closure sees the
///   effects of every write that returned before it, and a write that returns
///   is durable (see ``Options/Durability``). A closure that throws rolls back
///   everything it did.
/// - `read` runs its closure inside a read transaction on a pooled read-only
///   connection: one consistent snapshot, concurrent with writes and other reads.
///
/// Both are synchronous, for server handler threads. A write closure must not
/// call `write` again (it would wait for itself: it throws
/// ``SQLiteStoreError/nestedWrite`` instead); a `read` inside a write closure
/// sees the state before that write. No closure may keep its repository.
///
/// ## Why `@unchecked Sendable` is safe
/// Every mutable thing behind the store is confined: the writer connection is
/// only used on `writerQueue` (a serial queue, so one closure at a time), and
/// each read connection is used by one thread at a time, lent by
/// `SQLiteReaderPool` under its lock. The remaining stored properties are
/// immutable. SQLite connections are opened with `SQLITE_OPEN_NOMUTEX`
/// because of this confinement.
///
/// ## Group commit
/// Callers only see `write(_:)`: a closure in, its result (or error) out,
/// durable on return. Behind it, concurrent writes are batched: the writer
/// queue takes every queued closure (up to ``maxBatch``), runs each inside its
/// own `SAVEPOINT` of one `BEGIN IMMEDIATE` transaction (a throwing closure
/// rolls back only its savepoint), fsyncs once at `COMMIT`, and only then
/// wakes each caller with its result. One caller alone costs one transaction,
/// as before; many concurrent callers share the fsync. If the `COMMIT` fails,
/// every caller of the batch gets that error: nothing of theirs was stored.
public final class SQLiteStore: @unchecked Sendable {
    /// The database file.
    public let path: String
    /// The options the store was opened with.
    public let options: Options

    let writer: SQLiteConnection
    let writerQueue: DispatchQueue
    private let readers: SQLiteReaderPool
    private let queue = Mutex(WriteQueue())
    /// Marks `writerQueue` so that a nested `write` is recognised.
    private let writerQueueKey = DispatchSpecificKey<ObjectIdentifier>()

    /// Opens (creating if needed) the database at `path`, applies pending
    /// schema migrations and opens the read connections.
    ///
    /// Throws ``SQLiteSchemaError/databaseNewerThanCode(path:databaseVersion:latestKnownVersion:)``
    /// if the file was migrated by a newer build, and ``SQLiteError`` if it cannot be opened.
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        let directory = (path as NSString).deletingLastPathComponent
        if options.createsDirectory, !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let isNewFile = !FileManager.default.fileExists(atPath: path)
        if isNewFile {
            // SQLite creates the database with 0644 & ~umask and gives -wal and
            // -shm the database file's mode: create it 0600 first, whatever the umask.
            let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            if descriptor < 0 && errno != EEXIST {
                throw SQLiteError(code: 14, message: "cannot create \(path): \(String(cString: strerror(errno)))")
            }
            if descriptor >= 0 { _ = close(descriptor) }
        }

        writer = try SQLiteConnection(path: path, configuration: options.connectionConfiguration(mode: .readWriteCreate))
        try SQLiteMigrator.migrate(writer, migrations: SessionSchema.migrations)
        if isNewFile, options.durability == .full {
            // SQLite fsyncs the WAL and its directory entry, but not the
            // directory entry of a new main database file.
            Self.syncDirectory(directory.isEmpty ? "." : directory)
        }

        var readConnections: [SQLiteConnection] = []
        for _ in 0..<max(1, options.readerCount) {
            readConnections.append(
                try SQLiteConnection(path: path, configuration: options.connectionConfiguration(mode: .readOnly)))
        }
        readers = SQLiteReaderPool(connections: readConnections)
        writerQueue = DispatchQueue(label: "SessionStorage.SQLiteStore.writer")
        writerQueue.setSpecific(key: writerQueueKey, value: ObjectIdentifier(self))
    }

    /// Runs `body` in one write transaction and returns its result.
    ///
    /// The transaction commits when `body` returns and rolls back when it
    /// throws; the error is rethrown. Writes never interleave: each holds the
    /// database's write lock (`BEGIN IMMEDIATE`) from start to commit.
    public func write<T>(_ body: (SQLiteRepository) throws -> T) throws -> T {
        // A write inside a write would wait for itself forever.
        guard DispatchQueue.getSpecific(key: writerQueueKey) != ObjectIdentifier(self) else {
            throw SQLiteStoreError.nestedWrite
        }
        var result: Result<T, any Error>?
        // The closure runs on the writer queue while this thread waits for it,
        // so it never outlives this call.
        try withoutActuallyEscaping(body) { body in
            let job = WriteJob { repository in
                do {
                    result = .success(try body(repository))
                    return true
                } catch {
                    result = .failure(error)
                    return false
                }
            }
            let startDrain = queue.withLock { q -> Bool in
                q.jobs.append(job)
                if q.draining { return false }
                q.draining = true
                return true
            }
            if startDrain {
                writerQueue.async { self.drain() }
            }
            job.done.wait()
            if let error = job.commitError { throw error }
        }
        // `commit` either ran the closure (a result) or failed the batch (`commitError`, thrown above).
        guard let result else { preconditionFailure("a queued write neither ran nor failed") }
        return try result.get()
    }

    /// The most closures committed together.
    public static let maxBatch = 512

    /// One queued write closure; touched by its caller before it is queued and
    /// after `done` is signalled, and by the writer queue in between.
    private final class WriteJob: @unchecked Sendable {
        /// Dropped before `done` is signalled: the caller's closure must not
        /// outlive its `write` call (`withoutActuallyEscaping` checks).
        private var body: ((SQLiteRepository) -> Bool)?
        let done = DispatchSemaphore(value: 0)
        var commitError: (any Error)?

        init(run: @escaping (SQLiteRepository) -> Bool) {
            self.body = run
        }

        func run(_ repository: SQLiteRepository) -> Bool {
            body?(repository) ?? false
        }

        func finish() {
            body = nil
            done.signal()
        }
    }

    private struct WriteQueue {
        var jobs: [WriteJob] = []
        var draining = false
    }

    /// On `writerQueue`: commits batches until no write is queued.
    private func drain() {
        while true {
            let batch = queue.withLock { q -> [WriteJob] in
                let batch = Array(q.jobs.prefix(Self.maxBatch))
                q.jobs.removeFirst(batch.count)
                if batch.isEmpty { q.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            commit(batch)
        }
    }

    private func commit(_ batch: [WriteJob]) {
        do {
            try writer.transaction(.immediate) {
                if batch.count == 1 {
                    // Alone: the transaction itself is the unit.
                    let repository = SQLiteRepository(connection: writer, access: .readWrite)
                    defer { repository.invalidate() }
                    if !batch[0].run(repository) { throw RolledBack() }
                    return
                }
                for job in batch {
                    try writer.execute("SAVEPOINT write_job")
                    let repository = SQLiteRepository(connection: writer, access: .readWrite)
                    let ok = job.run(repository)
                    repository.invalidate()
                    if !ok { try writer.execute("ROLLBACK TRANSACTION TO SAVEPOINT write_job") }
                    try writer.execute("RELEASE SAVEPOINT write_job")
                }
            }
        } catch is RolledBack {
            // The single closure threw: its own error is in its result.
        } catch {
            for job in batch { job.commitError = error }
        }
        for job in batch { job.finish() }
    }

    private struct RolledBack: Error {}

    /// Runs `body` in one read transaction (a consistent snapshot of the last
    /// committed state) and returns its result. Write methods of the
    /// repository throw ``SQLiteStoreError/writeInReadTransaction(operation:)``.
    public func read<T>(_ body: (SQLiteRepository) throws -> T) throws -> T {
        try readers.withConnection { connection in
            try connection.transaction(.deferred) {
                let repository = SQLiteRepository(connection: connection, access: .readOnly)
                defer { repository.invalidate() }
                return try body(repository)
            }
        }
    }

    /// Copies the write-ahead log into the database file and truncates it
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), for example before a file backup or
    /// at shutdown. SQLite also checkpoints by itself as the log grows.
    public func checkpoint() throws {
        guard DispatchQueue.getSpecific(key: writerQueueKey) != ObjectIdentifier(self) else {
            throw SQLiteStoreError.nestedWrite
        }
        try writerQueue.sync {
            let result = try writer.queryOne("PRAGMA wal_checkpoint(TRUNCATE)") { row in
                (busy: try row.int(0), logFrames: try row.int(1), checkpointed: try row.int(2))
            }
            // busy = 1: a reader kept the checkpoint from finishing.
            if let result, result.busy != 0 {
                throw SQLiteError(
                    code: 5, message: "checkpoint incomplete: \(result.checkpointed) of \(result.logFrames) frames copied",
                    sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
        }
    }

    /// Checks the database file at `path` without creating or changing
    /// anything: missing, empty, without schema, damaged or healthy.
    public static func inspect(path: String) -> SQLiteDatabaseState {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        if info.st_size == 0 { return .empty }
        do {
            var configuration = SQLiteConnection.Configuration()
            // Read-write without create: a read-only open of a WAL database
            // fails when its -shm is missing (after a clean stop).
            configuration.mode = .readWrite
            configuration.journalModeWAL = false
            let connection = try SQLiteConnection(path: path, configuration: configuration)
            let tables = try connection.queryOne("SELECT count(*) FROM sqlite_master WHERE type = 'table'") { try $0.int(0) } ?? 0
            if tables == 0 { return .noSchema }
            let check = try connection.queryOne("PRAGMA quick_check") { try $0.string(0) } ?? ""
            return check == "ok" ? .healthy : .damaged("quick_check: \(check)")
        } catch {
            return .damaged("\(error)")
        }
    }

    /// The schema version of the open database.
    public func schemaVersion() throws -> Int {
        try read { repository in
            try SQLiteMigrator.appliedVersions(repository.connection).last ?? 0
        }
    }

    /// The schema version this build creates and expects.
    public static var latestSchemaVersion: Int { SessionSchema.latestVersion }

    /// One write transaction on the writer connection; runs on `writerQueue`.
    /// Makes a new directory entry durable. Best effort: a failure here only
    /// weakens the guarantee for a file that was just created and is empty.
    private static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        _ = close(descriptor)
    }
}
