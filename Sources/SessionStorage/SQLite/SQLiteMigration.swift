/// One versioned step of a database schema.
package struct SQLiteMigration: Sendable {
    /// The version this migration brings the schema to; versions are positive and increasing.
    package let version: Int
    /// A short description, recorded in `schema_migrations`.
    package let name: String
    /// Applies the migration. It runs inside the migration's transaction.
    package let apply: @Sendable (SQLiteConnection) throws -> Void

    /// A migration that runs code.
    package init(version: Int, name: String, apply: @escaping @Sendable (SQLiteConnection) throws -> Void) {
        self.version = version
        self.name = name
        self.apply = apply
    }

    /// A migration that runs an SQL script.
    package init(version: Int, name: String, sql: String) {
        self.init(version: version, name: name) { try $0.execute(sql) }
    }
}

/// Why a database's schema cannot be used by this code.
public enum SQLiteSchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The database was migrated by a newer release that knows versions this code does not.
    case databaseNewerThanCode(path: String, databaseVersion: Int, latestKnownVersion: Int)
    /// The database records a version that is not in this code's list (a different lineage).
    case unknownAppliedVersion(path: String, version: Int)
    /// The code's own migration list is malformed (a programming error).
    case invalidMigrationList(String)

    public var description: String {
        switch self {
        case .databaseNewerThanCode(let path, let databaseVersion, let latestKnownVersion):
            "database \(path) has schema version \(databaseVersion), newer than the latest this build knows "
                + "(\(latestKnownVersion)); refusing to open it: upgrade the server instead"
        case .unknownAppliedVersion(let path, let version):
            "database \(path) records schema version \(version), which this build does not know; refusing to open it"
        case .invalidMigrationList(let reason):
            "invalid migration list: \(reason)"
        }
    }
}

/// Applies versioned migrations, each in its own `BEGIN IMMEDIATE` transaction,
/// and records them in `schema_migrations(version, name, applied_at)`.
///
/// Re-running applies nothing twice, and a database whose recorded version is
/// newer than the code's latest is refused before anything is changed.
package enum SQLiteMigrator {
    /// The table that records applied migrations.
    package static let tableName = "schema_migrations"

    /// Brings the database up to the last migration and returns the versions
    /// applied by this call (empty when it was already up to date).
    @discardableResult
    package static func migrate(_ connection: SQLiteConnection, migrations: [SQLiteMigration]) throws -> [Int] {
        try validate(migrations)
        let latest = migrations.last?.version ?? 0
        try connection.transaction(.immediate) {
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS \(tableName) (
                    version    INTEGER PRIMARY KEY,
                    name       TEXT    NOT NULL,
                    applied_at INTEGER NOT NULL
                ) STRICT
                """
            )
            try checkCompatible(appliedVersions(connection), known: migrations, latest: latest, path: connection.path)
        }

        var applied: [Int] = []
        for migration in migrations {
            let didApply = try connection.transaction(.immediate) { () throws -> Bool in
                // Checked again inside the write lock: another process may have
                // migrated the file since.
                let done = try appliedVersions(connection)
                try checkCompatible(done, known: migrations, latest: latest, path: connection.path)
                guard !done.contains(migration.version) else { return false }
                try migration.apply(connection)
                try connection.run(
                    """
                    INSERT INTO \(tableName) (version, name, applied_at)
                    VALUES (?, ?, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
                    """,
                    [migration.version, migration.name]
                )
                return true
            }
            if didApply { applied.append(migration.version) }
        }
        return applied
    }

    /// The versions recorded in `schema_migrations`, ascending.
    package static func appliedVersions(_ connection: SQLiteConnection) throws -> [Int] {
        try connection.query("SELECT version FROM \(tableName) ORDER BY version") { try $0.int(0) }
    }

    private static func validate(_ migrations: [SQLiteMigration]) throws {
        var previous = 0
        for migration in migrations {
            guard migration.version > previous else {
                throw SQLiteSchemaError.invalidMigrationList(
                    "version \(migration.version) (\(migration.name)) must be positive and greater than \(previous)")
            }
            previous = migration.version
        }
    }

    private static func checkCompatible(
        _ applied: [Int], known: [SQLiteMigration], latest: Int, path: String
    ) throws {
        if let newest = applied.last, newest > latest {
            throw SQLiteSchemaError.databaseNewerThanCode(path: path, databaseVersion: newest, latestKnownVersion: latest)
        }
        let knownVersions = Set(known.map(\.version))
        if let stranger = applied.first(where: { !knownVersions.contains($0) }) {
            throw SQLiteSchemaError.unknownAppliedVersion(path: path, version: stranger)
        }
    }
}
