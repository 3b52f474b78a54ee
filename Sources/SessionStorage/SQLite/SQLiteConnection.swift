internal import CSQLite

/// One SQLite database connection: owns its `sqlite3*`, opened with
/// `sqlite3_open_v2` and closed with `sqlite3_close_v2` in `deinit`.
///
/// A connection is not thread-safe: its owner uses it from one thread (or one
/// serial queue) at a time. That is why it opens with `SQLITE_OPEN_NOMUTEX`:
/// SQLite's own per-connection mutex would only repeat the owner's guarantee.
package final class SQLiteConnection {
    /// How a connection opens its file.
    package enum Mode: Sendable {
        /// Read and write; create the file if it does not exist.
        case readWriteCreate
        /// Read and write an existing file.
        case readWrite
        /// Read only (the connection also sets `PRAGMA query_only`).
        case readOnly
    }

    /// The values of `PRAGMA synchronous`.
    package enum SynchronousMode: String, Sendable {
        /// No fsync at all: fast, loses recent commits on power loss and may corrupt.
        case off = "OFF"
        /// In WAL mode, commits survive a crash of the process but not a power loss.
        case normal = "NORMAL"
        /// Every commit is fsynced: it survives a crash of the process and a power loss.
        case full = "FULL"
        /// Like `full`, and also syncs the directory after unlinking the journal.
        case extra = "EXTRA"
    }

    /// How to open and set up a connection.
    package struct Configuration: Sendable {
        /// How to open the file.
        package var mode: Mode = .readWriteCreate
        /// Switch the database to WAL journaling (write connections only).
        package var journalModeWAL = true
        /// `PRAGMA synchronous`: `.full` by default, so a commit survives power loss.
        package var synchronous: SynchronousMode = .full
        /// `PRAGMA foreign_keys`.
        package var foreignKeys = true
        /// How long a statement waits for a lock held by another connection.
        package var busyTimeoutMilliseconds: Int32 = 5_000
        /// How many prepared statements the connection keeps for reuse.
        package var statementCacheCapacity = 128

        /// The default configuration: read-write-create, WAL, synchronous FULL, foreign keys on.
        package init() {}
    }

    /// How a transaction takes its locks.
    package enum TransactionKind: String, Sendable {
        /// Takes the write lock at the first write (`BEGIN DEFERRED`); fine for reads.
        case deferred = "DEFERRED"
        /// Takes the write lock at once (`BEGIN IMMEDIATE`), so two writers never interleave.
        case immediate = "IMMEDIATE"
        /// Like immediate; in WAL mode the same as immediate.
        case exclusive = "EXCLUSIVE"
    }

    /// The `sqlite3*`.
    let handle: OpaquePointer
    /// The database file path.
    package let path: String
    /// The configuration the connection was opened with.
    package let configuration: Configuration
    private var statementCache: [String: SQLiteStatement] = [:]

    /// Opens (and for read-write modes, creates) the database at `path` and applies
    /// the configuration's pragmas.
    package init(path: String, configuration: Configuration = Configuration()) throws {
        // NOMUTEX is only valid when SQLite was built thread-safe (mode 1 or 2).
        guard sqlite3_threadsafe() != 0 else {
            throw SQLiteError.misuse("this SQLite library was built without thread support (SQLITE_THREADSAFE=0)")
        }
        var flags = SQLITE_OPEN_NOMUTEX
        switch configuration.mode {
        case .readWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        }
        var opened: OpaquePointer?
        let code = sqlite3_open_v2(path, &opened, flags, nil)
        guard code == SQLITE_OK, let opened else {
            let error = SQLiteError(
                code: opened.map { sqlite3_extended_errcode($0) } ?? code,
                message: "cannot open \(path): "
                    + (opened.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code)))
            )
            // Even a failed open allocates a handle (except on out-of-memory): free it.
            if let opened { sqlite3_close_v2(opened) }
            throw error
        }
        self.handle = opened
        self.path = path
        self.configuration = configuration
        // From here on, a thrown error runs deinit, which closes the handle.
        try setUp()
    }

    deinit {
        // Finalize cached statements first; sqlite3_close_v2 would otherwise
        // keep the connection as a zombie until they are finalized.
        statementCache.removeAll()
        // sqlite3_close_v2 only fails on a misuse (an invalid handle); there is
        // nothing left to do about it in deinit.
        sqlite3_close_v2(handle)
    }

    private func setUp() throws {
        try check(sqlite3_extended_result_codes(handle, 1))
        try check(sqlite3_busy_timeout(handle, configuration.busyTimeoutMilliseconds))
        // Refuse "double-quoted string literals" (a legacy misfeature that turns
        // a misspelt column name into a string) and schema tampering.
        try check(csqlite_db_config_bool(handle, SQLITE_DBCONFIG_DQS_DML, 0))
        try check(csqlite_db_config_bool(handle, SQLITE_DBCONFIG_DQS_DDL, 0))
        try check(csqlite_db_config_bool(handle, SQLITE_DBCONFIG_DEFENSIVE, 1))

        if configuration.mode == .readOnly {
            try execute("PRAGMA query_only = ON")
        } else if configuration.journalModeWAL {
            let mode = try queryOne("PRAGMA journal_mode = WAL") { try $0.string(0) }
            guard mode?.lowercased() == "wal" else {
                throw SQLiteError(
                    code: SQLITE_ERROR,
                    message: "cannot switch \(path) to WAL journaling: journal_mode is \(mode ?? "unknown")",
                    sql: "PRAGMA journal_mode = WAL"
                )
            }
            // Checkpoint every ~40 MB of WAL instead of SQLite's 4 MB: each
            // checkpoint fsyncs the database file on the writer, so fewer,
            // larger ones take less of the writer's time.
            try execute("PRAGMA wal_autocheckpoint = 10000")
            // The writer keeps the index pages it updates in memory (64 MiB rather than 2 MiB):
            // a batch of the materializer touches thousands of them.
            try execute("PRAGMA cache_size = -65536")
        }
        try execute("PRAGMA synchronous = \(configuration.synchronous.rawValue)")
        try execute("PRAGMA foreign_keys = \(configuration.foreignKeys ? "ON" : "OFF")")
        if configuration.foreignKeys {
            // PRAGMA foreign_keys is silently ignored inside a transaction or by
            // a library built without foreign keys: make sure it took effect.
            let enabled = try queryOne("PRAGMA foreign_keys") { try $0.bool(0) }
            guard enabled == true else {
                throw SQLiteError(code: SQLITE_ERROR, message: "cannot enable foreign keys", sql: "PRAGMA foreign_keys")
            }
        }
    }

    /// Throws the connection's current error unless `code` is `SQLITE_OK`.
    func check(_ code: Int32, sql: String? = nil) throws {
        guard code == SQLITE_OK else {
            throw SQLiteError.from(connection: handle, code: code, sql: sql)
        }
    }

    // MARK: Running SQL

    /// Runs one or more semicolon-separated statements that take no arguments
    /// (DDL, pragmas, scripts). Rows they return are ignored.
    package func execute(_ script: String) throws {
        try script.withCString { start in
            var cursor = start
            while cursor.pointee != 0 {
                var statement: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let code = sqlite3_prepare_v2(handle, cursor, -1, &statement, &tail)
                guard code == SQLITE_OK else {
                    throw SQLiteError.from(connection: handle, code: code, sql: String(cString: cursor))
                }
                defer { sqlite3_finalize(statement) }
                guard let statement else { break }  // only blanks or comments were left
                var stepCode = sqlite3_step(statement)
                while stepCode == SQLITE_ROW { stepCode = sqlite3_step(statement) }
                guard stepCode == SQLITE_DONE else {
                    let sql = sqlite3_sql(statement).map { String(cString: $0) }
                    throw SQLiteError.from(connection: handle, code: stepCode, sql: sql)
                }
                guard let tail else { break }
                cursor = tail
            }
        }
    }

    /// Runs one statement with `arguments` to completion and returns the number
    /// of rows it inserted, updated or deleted.
    @discardableResult
    package func run(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Int {
        try withStatement(sql) { statement in
            try statement.bind(arguments)
            while try statement.step() {}
            return Int(sqlite3_changes(handle))
        }
    }

    /// Runs one statement once per element of `rows`, `bind` binding every parameter of each row
    /// itself (one value at a time, no array per row; bindings are not cleared between rows).
    /// Text is bound without copies (the statement's row arena), and the bindings are cleared at the end.
    package func runEach<Rows: Sequence>(_ sql: String, _ rows: Rows, binding bind: (SQLiteStatement, Rows.Element) throws -> Void) throws {
        try withStatement(sql) { statement in
            statement.beginRows()
            defer { statement.endRows() }
            for row in rows {
                statement.startRow()
                try bind(statement, row)
                statement.checkRowBound()
                while try statement.step() {}
                statement.resetKeepingBindings()
            }
        }
    }

    /// Runs a query and decodes every row.
    package func query<T>(
        _ sql: String,
        _ arguments: [any SQLiteBindable] = [],
        _ decode: (SQLiteRow) throws -> T
    ) throws -> [T] {
        try withStatement(sql) { statement in
            try statement.bind(arguments)
            var rows: [T] = []
            let row = SQLiteRow(statement: statement)
            while try statement.step() {
                rows.append(try decode(row))
            }
            return rows
        }
    }

    /// Runs a query and decodes its first row, if any.
    package func queryOne<T>(
        _ sql: String,
        _ arguments: [any SQLiteBindable] = [],
        _ decode: (SQLiteRow) throws -> T
    ) throws -> T? {
        try withStatement(sql) { statement in
            try statement.bind(arguments)
            guard try statement.step() else { return nil }
            return try decode(SQLiteRow(statement: statement))
        }
    }

    /// Runs `body` with a prepared statement for `sql`, taken from the
    /// statement cache (or prepared and cached), and resets it afterwards.
    package func withStatement<T>(_ sql: String, _ body: (SQLiteStatement) throws -> T) throws -> T {
        let statement: SQLiteStatement
        if let cached = statementCache[sql], !cached.isInUse {
            statement = cached
        } else {
            // Not cached, or already in use by an enclosing call: prepare one.
            let cacheable = statementCache[sql] == nil && statementCache.count < configuration.statementCacheCapacity
            statement = try SQLiteStatement(connectionHandle: handle, sql: sql, persistent: cacheable)
            if cacheable { statementCache[sql] = statement }
        }
        statement.isInUse = true
        defer {
            statement.reset()
            statement.isInUse = false
        }
        return try body(statement)
    }

    /// The rowid of the last row inserted on this connection.
    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// True while a transaction is open on this connection.
    package var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// The number of statements in the statement cache.
    package var cachedStatementCount: Int { statementCache.count }
}
