import Foundation
import Testing

@testable import SessionStorage

/// The generic SQLite wrapper, against real database files.
@Suite struct SQLiteConnectionTests {
    @Test func openAppliesPragmas() throws {
        try TemporaryDirectory.with { directory in
            let connection = try SQLiteConnection(path: directory.file("a.sqlite"))
            #expect(FileManager.default.fileExists(atPath: directory.file("a.sqlite")))
            #expect(try connection.queryOne("PRAGMA journal_mode") { try $0.string(0) } == "wal")
            #expect(try connection.queryOne("PRAGMA synchronous") { try $0.int(0) } == 2)  // FULL
            #expect(try connection.queryOne("PRAGMA foreign_keys") { try $0.int(0) } == 1)
            #expect(try connection.queryOne("PRAGMA busy_timeout") { try $0.int(0) } == 5_000)

            var configuration = SQLiteConnection.Configuration()
            configuration.synchronous = .normal
            configuration.busyTimeoutMilliseconds = 250
            let second = try SQLiteConnection(path: directory.file("a.sqlite"), configuration: configuration)
            #expect(try second.queryOne("PRAGMA synchronous") { try $0.int(0) } == 1)  // NORMAL
            #expect(try second.queryOne("PRAGMA busy_timeout") { try $0.int(0) } == 250)
        }
    }

    @Test func openingAMissingFileReadOnlyFailsWithPath() throws {
        try TemporaryDirectory.with { directory in
            var configuration = SQLiteConnection.Configuration()
            configuration.mode = .readOnly
            let error = #expect(throws: SQLiteError.self) {
                _ = try SQLiteConnection(path: directory.file("missing.sqlite"), configuration: configuration)
            }
            #expect(error?.primaryCode == 14)  // SQLITE_CANTOPEN
            #expect(error?.message.contains("missing.sqlite") == true)
        }
    }

    /// runEach binds text from the statement's row arena without copies: values bigger than a
    /// chunk, a chunk filling up mid-row, empty and non-ASCII text, NULLs, and the statement reused
    /// from the cache for a second batch all read back exactly.
    @Test func runEachBindsTextWithoutCopies() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("rows.sqlite"))
            try db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT) STRICT")
            func row(_ n: Int) -> (Int64, String?, String, String?) {
                let long = String(repeating: "x\u{e9}", count: n * 173 % 5000)   // up to ~15 KB
                return (Int64(n), n % 5 == 0 ? nil : "a\(n)-\u{1F3A7}", n % 7 == 0 ? "" : long, n % 3 == 0 ? nil : String(n * 31))
            }
            let insert = "INSERT INTO t (n, a, b, c) VALUES (?, ?, ?, ?)"
            for batch in [0..<100, 100..<160] {
                try db.runEach(insert, batch.map(row)) { statement, r in
                    try statement.bind(r.0, at: 1)
                    try statement.bind(r.1, at: 2)
                    try statement.bind(r.2, at: 3)
                    try statement.bind(r.3, at: 4)
                }
            }
            let back = try db.query("SELECT n, a, b, c FROM t ORDER BY n") { r in
                (try r.int64(0), try r.optionalString(1), try r.string(2), try r.optionalString(3))
            }
            #expect(back.count == 160)
            for (n, r) in back.enumerated() {
                let expected = row(n)
                #expect(r.0 == expected.0 && r.1 == expected.1 && r.2 == expected.2 && r.3 == expected.3, "row \(n)")
            }
        }
    }

    @Test func bindsAndReadsEveryStorageClass() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("types.sqlite"))
            try db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n ANY) STRICT")
            let cases: [(Int64, Double, String, [UInt8])] = [
                (.min, -0.5, "", []),
                (.max, 1e300, "héllo wörld ✓ 🙂", [0, 1, 2, 255]),
                (0, 0, "embedded\u{0}nul", [0]),
            ]
            for (i, r, s, b) in cases {
                try db.run("DELETE FROM t")
                try db.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [i, r, s, b, SQLiteValue.null])
                let row = try #require(
                    try db.queryOne("SELECT i, r, s, b, n FROM t") { row in
                        (try row.int64(0), try row.double(1), try row.string(2), try row.blob(3), row.isNull(4))
                    })
                #expect(row.0 == i)
                #expect(row.1 == r)
                #expect(row.2 == s)
                #expect(row.3 == b)
                #expect(row.4)
                // An empty string stays an empty string, not NULL.
                #expect(try db.queryOne("SELECT s IS NULL, b IS NULL FROM t") { [try $0.bool(0), try $0.bool(1)] } == [false, false])
            }
            let optional: String? = nil
            try db.run("INSERT INTO t (s) VALUES (?)", [optional])
            #expect(try db.query("SELECT s FROM t WHERE i IS NULL") { try $0.optionalString(0) } == [nil])
        }
    }

    @Test func readersAreStrictAboutTypesAndNulls() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("strict.sqlite"))
            let nullRead = #expect(throws: SQLiteError.self) {
                _ = try db.queryOne("SELECT NULL AS empty_column") { try $0.string(0) }
            }
            #expect(nullRead?.code == 20)  // SQLITE_MISMATCH
            #expect(nullRead?.message.contains("empty_column") == true)
            #expect(throws: SQLiteError.self) { _ = try db.queryOne("SELECT 'x'") { try $0.int64(0) } }
            #expect(throws: SQLiteError.self) { _ = try db.queryOne("SELECT 2") { try $0.bool(0) } }
            #expect(throws: SQLiteError.self) { _ = try db.queryOne("SELECT 1") { try $0.int64(1) } }
        }
    }

    @Test func errorsCarryCodeMessageAndSQL() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("errors.sqlite"))
            let syntax = #expect(throws: SQLiteError.self) { try db.run("SELEKT 1") }
            #expect(syntax?.primaryCode == 1)  // SQLITE_ERROR
            #expect(syntax?.sql == "SELEKT 1")
            #expect(syntax?.message.contains("syntax error") == true)

            let arity = #expect(throws: SQLiteError.self) { try db.run("SELECT ?, ?", [1]) }
            #expect(arity?.code == 25)  // SQLITE_RANGE

            let twoStatements = #expect(throws: SQLiteError.self) { try db.run("SELECT 1; SELECT 2") }
            #expect(twoStatements?.code == 21)  // SQLITE_MISUSE

            try db.execute("CREATE TABLE u (k TEXT PRIMARY KEY, parent TEXT REFERENCES u(k)) STRICT")
            try db.run("INSERT INTO u VALUES ('a', NULL)")
            let unique = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO u VALUES ('a', NULL)") }
            #expect(unique?.code == 1555)  // SQLITE_CONSTRAINT_PRIMARYKEY
            #expect(unique?.isConstraintViolation == true)
            #expect(unique?.description.contains("INSERT INTO u") == true)
            let foreignKey = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO u VALUES ('b', 'zz')") }
            #expect(foreignKey?.code == 787)  // SQLITE_CONSTRAINT_FOREIGNKEY
            // The cached statement is usable again after a failure.
            try db.run("INSERT INTO u VALUES ('b', 'a')")
            #expect(try db.query("SELECT k FROM u ORDER BY k") { try $0.string(0) } == ["a", "b"])
        }
    }

    @Test func executeRunsScriptsAndReportsTheFailingStatement() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("script.sqlite"))
            try db.execute(
                """
                -- a comment
                CREATE TABLE a (x INTEGER) STRICT;
                INSERT INTO a VALUES (1);  INSERT INTO a VALUES (2);
                /* trailing comment */
                """)
            #expect(try db.query("SELECT x FROM a ORDER BY x") { try $0.int(0) } == [1, 2])
            let error = #expect(throws: SQLiteError.self) {
                try db.execute("INSERT INTO a VALUES (3); INSERT INTO a VALUES ('text');")
            }
            #expect(error?.sql?.contains("'text'") == true)
        }
    }

    @Test func transactionsCommitAndRollBack() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("tx.sqlite"))
            try db.execute("CREATE TABLE a (x INTEGER PRIMARY KEY) STRICT")
            struct Boom: Error {}
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.run("INSERT INTO a VALUES (1)")
                    throw Boom()
                }
            }
            #expect(!db.isInTransaction)
            #expect(try db.query("SELECT x FROM a") { try $0.int(0) } == [])

            // A constraint failure inside the transaction rolls back earlier work too.
            #expect(throws: SQLiteError.self) {
                try db.transaction {
                    try db.run("INSERT INTO a VALUES (1)")
                    try db.run("INSERT INTO a VALUES (1)")
                }
            }
            #expect(try db.query("SELECT x FROM a") { try $0.int(0) } == [])

            let value = try db.transaction { () throws -> Int in
                try db.run("INSERT INTO a VALUES (7)")
                // A savepoint that fails undoes only its own work.
                #expect(throws: Boom.self) {
                    try db.savepoint("inner") {
                        try db.run("INSERT INTO a VALUES (8)")
                        throw Boom()
                    }
                }
                try db.savepoint("kept") { try db.run("INSERT INTO a VALUES (9)") }
                return 42
            }
            #expect(value == 42)
            #expect(try db.query("SELECT x FROM a ORDER BY x") { try $0.int(0) } == [7, 9])

            // Nesting a transaction is a misuse, reported without touching the open one.
            try db.transaction {
                let nested = #expect(throws: SQLiteError.self) { try db.transaction {} }
                #expect(nested?.code == 21)
            }
        }
    }

    @Test func immediateTransactionsExcludeOtherWriters() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("locks.sqlite")
            let first = try SQLiteConnection(path: path)
            var configuration = SQLiteConnection.Configuration()
            configuration.busyTimeoutMilliseconds = 50
            let second = try SQLiteConnection(path: path, configuration: configuration)
            try first.execute("CREATE TABLE a (x INTEGER) STRICT")
            try first.transaction(.immediate) {
                let busy = #expect(throws: SQLiteError.self) {
                    try second.transaction(.immediate) { try second.run("INSERT INTO a VALUES (1)") }
                }
                #expect(busy?.primaryCode == 5)  // SQLITE_BUSY
                try first.run("INSERT INTO a VALUES (2)")
            }
            #expect(try second.query("SELECT x FROM a") { try $0.int(0) } == [2])
        }
    }

    @Test func readOnlyConnectionsRefuseWrites() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("ro.sqlite")
            let writer = try SQLiteConnection(path: path)
            try writer.execute("CREATE TABLE a (x INTEGER) STRICT; INSERT INTO a VALUES (1);")
            var configuration = SQLiteConnection.Configuration()
            configuration.mode = .readOnly
            let reader = try SQLiteConnection(path: path, configuration: configuration)
            #expect(try reader.query("SELECT x FROM a") { try $0.int(0) } == [1])
            let error = #expect(throws: SQLiteError.self) { try reader.run("INSERT INTO a VALUES (2)") }
            #expect(error?.primaryCode == 8)  // SQLITE_READONLY
        }
    }

    @Test func statementCacheReusesAndHandlesReentrancy() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("cache.sqlite"))
            try db.execute("CREATE TABLE a (x INTEGER) STRICT; INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);")
            let before = db.cachedStatementCount
            for _ in 0..<10 { _ = try db.query("SELECT x FROM a WHERE x > ?", [0]) { try $0.int(0) } }
            #expect(db.cachedStatementCount == before + 1)
            // The same SQL used while it is being stepped gets its own statement.
            let pairs = try db.query("SELECT x FROM a ORDER BY x") { row -> [Int] in
                let x = try row.int(0)
                return try db.query("SELECT x FROM a ORDER BY x") { try $0.int(0) * 10 + x }
            }
            #expect(pairs == [[11, 21], [12, 22]])
        }
    }
}
