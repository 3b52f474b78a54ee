import Testing

@testable import SessionStorage

/// Versioned migrations against real database files.
@Suite struct SQLiteMigratorTests {
    static let v1 = SQLiteMigration(version: 1, name: "create a", sql: "CREATE TABLE a (x INTEGER) STRICT")
    static let v2 = SQLiteMigration(version: 2, name: "seed a", sql: "INSERT INTO a VALUES (1)")
    static let v3 = SQLiteMigration(version: 3, name: "create b", sql: "CREATE TABLE b (y TEXT) STRICT")

    @Test func appliesEachMigrationOnceAndRecordsIt() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("m.sqlite")
            do {
                let db = try SQLiteConnection(path: path)
                #expect(try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2]) == [1, 2])
                #expect(try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2]) == [])
            }
            // Re-opening applies nothing twice; a new migration is applied alone.
            let db = try SQLiteConnection(path: path)
            #expect(try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2]) == [])
            #expect(try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2, Self.v3]) == [3])
            #expect(try db.query("SELECT x FROM a") { try $0.int(0) } == [1])
            let recorded = try db.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version") {
                (try $0.int(0), try $0.string(1), try $0.int64(2))
            }
            #expect(recorded.map(\.0) == [1, 2, 3])
            #expect(recorded.map(\.1) == ["create a", "seed a", "create b"])
            // applied_at is Unix milliseconds: after 2020, before 2200.
            #expect(recorded.allSatisfy { $0.2 > 1_577_836_800_000 && $0.2 < 7_258_118_400_000 })
        }
    }

    @Test func refusesADatabaseNewerThanTheCode() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("m.sqlite")
            let db = try SQLiteConnection(path: path)
            try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2, Self.v3])
            let error = #expect(throws: SQLiteSchemaError.self) {
                try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2])
            }
            #expect(error == .databaseNewerThanCode(path: path, databaseVersion: 3, latestKnownVersion: 2))
            #expect(error?.description.contains("newer") == true)
        }
    }

    @Test func refusesAnUnknownRecordedVersion() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("m.sqlite")
            let db = try SQLiteConnection(path: path)
            try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v3])
            #expect(throws: SQLiteSchemaError.unknownAppliedVersion(path: path, version: 3)) {
                try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v2, SQLiteMigration(version: 4, name: "x", sql: "SELECT 1")])
            }
        }
    }

    @Test func refusesAMalformedList() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("m.sqlite"))
            #expect(throws: SQLiteSchemaError.self) { try SQLiteMigrator.migrate(db, migrations: [Self.v2, Self.v1]) }
            #expect(throws: SQLiteSchemaError.self) { try SQLiteMigrator.migrate(db, migrations: [Self.v1, Self.v1]) }
        }
    }

    @Test func aFailingMigrationLeavesNothingBehind() throws {
        try TemporaryDirectory.with { directory in
            let db = try SQLiteConnection(path: directory.file("m.sqlite"))
            let broken = SQLiteMigration(
                version: 2, name: "half",
                sql: "CREATE TABLE c (z INTEGER) STRICT; INSERT INTO nowhere VALUES (1);")
            #expect(throws: SQLiteError.self) { try SQLiteMigrator.migrate(db, migrations: [Self.v1, broken]) }
            #expect(try SQLiteMigrator.appliedVersions(db) == [1])
            #expect(try db.queryOne("SELECT count(*) FROM sqlite_schema WHERE name = 'c'") { try $0.int(0) } == 0)
            #expect(!db.isInTransaction)
        }
    }
}
