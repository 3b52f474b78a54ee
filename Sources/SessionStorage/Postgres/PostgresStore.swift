internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The session store on PostgreSQL, for several server instances sharing one
/// database: the same contract as ``SQLiteStore``.
///
/// - `write` runs its closure in one transaction that first takes the store's
///   write lock, a transaction-scoped advisory lock
///   (`pg_advisory_xact_lock(PostgresStore.writeLockKey)`), held until
///   `COMMIT` or `ROLLBACK`. Writes are therefore serialized across every
///   connection of every instance, exactly like SQLite's single writer: a
///   closure sees every write that committed before it (the transaction runs
///   at READ COMMITTED, so each statement sees what committed before the lock
///   was granted), no two closures interleave, and a closure that throws rolls
///   back everything it did. A write that returns is durable
///   (`synchronous_commit = on`).
/// - `read` runs its closure in a `REPEATABLE READ READ ONLY` transaction: one
///   consistent snapshot, concurrent with writes and other reads, no lock.
///
/// Why that is enough for several instances: the engine re-reads and
/// re-checks state inside each write, and writes never overlap, so no session
/// is routed twice, no capacity is overdrawn and a due timer fires once (the
/// second instance finds it already fired). Event
/// sequences and cursors are assigned as `max + 1` under the lock, so they are
/// gapless and follow commit order; and PostgreSQL makes a transaction visible
/// before it releases its locks, so any snapshot that contains an event also
/// contains every event with a smaller cursor: a watcher reading
/// `events(afterCursor:)` can never skip one.
///
/// Connections come from two small pools (writers, readers), opened on first
/// use. A connection that fails is closed and the next call opens a new one,
/// so the store recovers by itself when the database comes back. Failures
/// that mean the database is unreachable surface as
/// ``PostgresStoreError/unavailable(_:)``; serialization failures and
/// deadlocks are retried inside `write` (``Options/conflictRetries``).
///
/// Both methods are synchronous, for server handler threads. A write closure
/// must not call `write` again, on this or any other `PostgresStore` (it would
/// wait for its own lock: it throws ``PostgresStoreError/nestedWrite``
/// instead); a `read` inside a write closure sees the state before that
/// write. No closure may keep its repository. Unlike SQLite's, a closure may
/// run more than once (after a conflict, or when a pooled connection turned
/// out to be dead before anything was committed), so it must not have effects
/// outside the repository.
///
/// ## Why `Sendable` holds
/// Every stored property is immutable; the two pools are the only shared
/// mutable state and guard it with a lock, lending each `PGconn` to one thread
/// at a time (see `PostgresConnectionPool`). A repository never leaves its
/// closure.
public final class PostgresStore: Sendable {
    /// The advisory lock key that serializes writes: ASCII "Sessions". Every
    /// instance of every version of this service must use the same key.
    public static let writeLockKey: Int64 = 0x5365_7373_696F_6E73

    /// The database, as `postgres://user@host:port/database` (no password): for logs.
    public let database: String
    /// The options the store was opened with.
    public let options: Options

    private let writers: PostgresConnectionPool
    private let readers: PostgresConnectionPool
    private static let writingKey = "SessionStorage.PostgresStore.writing"

    /// Connects to the database at `url` (`postgres://user@host:port/database`,
    /// any libpq connection URI), applies pending schema migrations and keeps
    /// the connection for later calls.
    ///
    /// Throws ``PostgresStoreError/invalidURL(_:)`` for a URL libpq cannot
    /// parse, ``PostgresStoreError/unavailable(_:)`` when the database cannot
    /// be reached, ``PostgresStoreError/databaseNewerThanCode(database:databaseVersion:latestKnownVersion:)``
    /// when a newer build migrated it, and ``PostgresError`` otherwise.
    public init(url: String, options: Options = Options()) throws {
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
            throw PostgresStoreError.invalidURL("expected postgres://user@host:port/database")
        }
        if let problem = PostgresConnection.syntaxError(in: url) {
            throw PostgresStoreError.invalidURL(problem)
        }
        let database = PostgresConnection.describe(url)
        self.database = database
        self.options = options
        let configuration = options.connectionConfiguration(url: url)
        writers = PostgresConnectionPool(configuration: configuration, capacity: options.writerConnections)
        readers = PostgresConnectionPool(configuration: configuration, capacity: options.readerConnections)
        _ = try withRetries(writers) { connection, _ in
            if let schema = options.schema {
                // A tenant's schema, created on first use; its name is checked by the tenant id rules.
                try Self.checkSchemaName(schema)
                // Under the migration lock: two instances creating it at once would collide.
                try connection.execute("BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLockKey)); CREATE SCHEMA IF NOT EXISTS \(schema); COMMIT")
            }
            return try PostgresMigrator.migrate(
                connection, migrations: PostgresSchema.migrations, lockKey: Self.writeLockKey, database: database)
        }
    }

    /// Where the owner of `partition` in `schema` (nil: this store's own) advertised itself, read
    /// on this store's connections: a standby asks for every tenant it does not own without a
    /// connection per tenant.
    public func partitionOwnerAddress(schema: String?, partition: String) throws -> String? {
        try partitionOwnerAddresses([(schema, partition)])[partition]
    }

    /// Where the owners of several partitions advertised themselves, in one round trip (a standby
    /// refreshes every tenant it forwards once a second: one statement per tenant made those
    /// reads grow with tenants times instances). Keyed by partition; a partition with no owner
    /// row yet is absent. `partitions`: each partition and its schema (nil: this store's own).
    public func partitionOwnerAddresses(_ partitions: [(schema: String?, partition: String)]) throws -> [String: String] {
        guard !partitions.isEmpty else { return [:] }
        var arguments: [any PostgresBindable] = []
        var selects: [String] = []
        for (schema, partition) in partitions {
            let table: String
            if let schema {
                try Self.checkSchemaName(schema)
                table = "\(schema).partition_owner"
            } else {
                table = "partition_owner"
            }
            arguments.append(partition)
            selects.append("SELECT partition, address FROM \(table) WHERE partition = $\(arguments.count)")
        }
        return try read { (repo: PostgresRepository) throws -> [String: String] in
            var out: [String: String] = [:]
            for (partition, address) in try repo.connection.query(
                selects.joined(separator: " UNION ALL "), arguments, prepare: partitions.count == 1, { (try $0.string(0), try $0.string(1)) }) {
                out[partition] = address
            }
            return out
        }
    }

    /// A schema name goes into SQL text (it cannot be a bound parameter): lower-case letters,
    /// digits and '_' only.
    private static func checkSchemaName(_ schema: String) throws {
        guard schema.utf8.allSatisfy({ (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5f }) else {
            throw PostgresStoreError.invalidURL("schema \(schema) must be lower-case letters, digits and '_'")
        }
    }

    /// Runs `body` in one write transaction, under the write lock, and returns its result.
    ///
    /// The transaction commits when `body` returns and rolls back when it
    /// throws; the error is rethrown.
    public func write<T>(_ body: (PostgresRepository) throws -> T) throws -> T {
        let threadDictionary = Thread.current.threadDictionary
        // A write inside a write would wait for its own lock until lock_timeout.
        guard threadDictionary[Self.writingKey] == nil else {
            throw PostgresStoreError.nestedWrite
        }
        threadDictionary[Self.writingKey] = true
        defer { threadDictionary[Self.writingKey] = nil }

        return try withRetries(writers) { connection, commitSent in
            do {
                // One round trip: open the transaction and wait for the lock.
                try connection.execute(
                    "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(\(Self.writeLockKey))")
                let repository = PostgresRepository(connection: connection, access: .readWrite)
                defer { repository.invalidate() }
                let result = try body(repository)
                commitSent = true
                try connection.commit()
                return result
            } catch {
                connection.rollbackAfterError()
                throw error
            }
        }
    }

    /// Runs `body` in one read transaction (a consistent snapshot of the last
    /// committed state) and returns its result. Write methods of the
    /// repository throw ``PostgresStoreError/writeInReadTransaction(operation:)``.
    public func read<T>(_ body: (PostgresRepository) throws -> T) throws -> T {
        try withRetries(readers) { connection, _ in
            try connection.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") {
                let repository = PostgresRepository(connection: connection, access: .readOnly)
                defer { repository.invalidate() }
                return try body(repository)
            }
        }
    }

    /// Runs `body` on a writer connection outside any transaction and outside the write lock:
    /// each statement commits on its own (bookkeeping that must not wait for domain writes).
    func autocommit<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try withRetries(writers) { connection, _ in try body(connection) }
    }

    /// The schema version of the database.
    public func schemaVersion() throws -> Int {
        try read { repository in
            try PostgresMigrator.appliedVersions(repository.connection).last ?? 0
        }
    }

    /// The schema version this build creates and expects.
    public static var latestSchemaVersion: Int { PostgresSchema.latestVersion }

    /// Closes every idle connection; the next call opens new ones.
    public func closeIdleConnections() {
        writers.closeIdleConnections()
        readers.closeIdleConnections()
    }

    // MARK: Failures

    /// Runs `attempt` with a pooled connection and handles failures:
    ///
    /// - the database is unreachable: every idle connection is closed; if the
    ///   failed connection was an old pooled one and nothing had been
    ///   committed, the attempt runs once more on a fresh connection (the
    ///   database may have restarted since the connection was opened);
    ///   otherwise ``PostgresStoreError/unavailable(_:)``;
    /// - a serialization failure or deadlock: up to `conflictRetries` more
    ///   attempts, after a short random pause.
    ///
    /// `attempt` sets its `inout Bool` once it has sent `COMMIT`: from then on
    /// the outcome of a lost connection is unknown and nothing is retried.
    private func withRetries<T>(
        _ pool: PostgresConnectionPool, _ attempt: (PostgresConnection, inout Bool) throws -> T
    ) throws -> T {
        var conflicts = 0
        var retriedStaleConnection = false
        while true {
            var reusedConnection = false
            var commitSent = false
            do {
                return try pool.withConnection { connection, reused in
                    reusedConnection = reused
                    return try attempt(connection, &commitSent)
                }
            } catch let error as PostgresError {
                if error.meansUnavailable {
                    closeIdleConnections()
                    if reusedConnection, !commitSent, !retriedStaleConnection {
                        retriedStaleConnection = true
                        continue
                    }
                    throw PostgresStoreError.unavailable(
                        commitSent
                            ? "\(database): the connection failed during COMMIT, so the outcome is unknown: \(error.message)"
                            : "\(database): \(error.message)")
                }
                if error.isTransient, conflicts < options.conflictRetries {
                    conflicts += 1
                    usleep(UInt32.random(in: 1_000...(5_000 << conflicts)))
                    continue
                }
                throw error
            }
        }
    }
}
