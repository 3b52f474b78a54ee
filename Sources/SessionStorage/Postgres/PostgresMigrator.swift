/// One versioned step of the PostgreSQL schema: an SQL script without parameters.
package struct PostgresMigration: Sendable {
    /// The version this migration brings the schema to; versions are positive and increasing.
    package let version: Int
    /// A short description, recorded in `schema_migrations`.
    package let name: String
    /// The script; it runs inside the migration's transaction (PostgreSQL DDL is transactional).
    package let sql: String

    package init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies versioned migrations, each in its own transaction that first takes
/// the store's write lock, and records them in
/// `schema_migrations(version, name, applied_at)`.
///
/// Several server instances may start at once against one database: the lock
/// makes one of them migrate and the others find the work done. Re-running
/// applies nothing twice, and a database whose recorded version is newer than
/// the code's latest is refused before anything is changed.
package enum PostgresMigrator {
    /// The table that records applied migrations.
    package static let tableName = "schema_migrations"

    /// Brings the database up to the last migration and returns the versions
    /// applied by this call (empty when it was already up to date).
    @discardableResult
    package static func migrate(
        _ connection: PostgresConnection, migrations: [PostgresMigration], lockKey: Int64, database: String
    ) throws -> [Int] {
        try validate(migrations)
        let latest = migrations.last?.version ?? 0
        var applied: [Int] = []
        for migration in migrations {
            let didApply = try connection.transaction("BEGIN; SELECT pg_advisory_xact_lock(\(lockKey))") { () throws -> Bool in
                try connection.execute(
                    """
                    CREATE TABLE IF NOT EXISTS \(tableName) (
                        version    BIGINT PRIMARY KEY,
                        name       TEXT   NOT NULL,
                        applied_at BIGINT NOT NULL
                    )
                    """)
                let done = try appliedVersions(connection)
                try checkCompatible(done, known: migrations, latest: latest, database: database)
                guard !done.contains(migration.version) else { return false }
                try connection.execute(migration.sql)
                try connection.run(
                    """
                    INSERT INTO \(tableName) (version, name, applied_at)
                    VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                    """,
                    [migration.version, migration.name])
                return true
            }
            if didApply { applied.append(migration.version) }
        }
        return applied
    }

    /// The versions recorded in `schema_migrations`, ascending (empty if the table does not exist).
    package static func appliedVersions(_ connection: PostgresConnection) throws -> [Int] {
        let exists = try connection.queryOne("SELECT to_regclass($1) IS NOT NULL", [tableName]) { try $0.bool(0) }
        guard exists == true else { return [] }
        return try connection.query("SELECT version FROM \(tableName) ORDER BY version") { try $0.int(0) }
    }

    private static func validate(_ migrations: [PostgresMigration]) throws {
        var previous = 0
        for migration in migrations {
            guard migration.version > previous else {
                throw PostgresError.misuse(
                    "invalid migration list: version \(migration.version) (\(migration.name)) must be positive and greater than \(previous)")
            }
            previous = migration.version
        }
    }

    private static func checkCompatible(
        _ applied: [Int], known: [PostgresMigration], latest: Int, database: String
    ) throws {
        if let newest = applied.last, newest > latest {
            throw PostgresStoreError.databaseNewerThanCode(
                database: database, databaseVersion: newest, latestKnownVersion: latest)
        }
        let knownVersions = Set(known.map(\.version))
        if let stranger = applied.first(where: { !knownVersions.contains($0) }) {
            throw PostgresStoreError.unknownAppliedVersion(database: database, version: stranger)
        }
    }
}
