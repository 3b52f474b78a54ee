/// A failure of the PostgreSQL store that is not a plain SQL error.
public enum PostgresStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The database cannot be reached or went away (connection refused, lost
    /// or rejected, SQLSTATE class 08, 57P01 admin shutdown, 57P02 crash
    /// shutdown, 57P03 cannot connect now).
    /// The call may be retried later; the store reconnects by itself. If it was
    /// a write whose `COMMIT` had been sent, the message says that the outcome
    /// is unknown.
    case unavailable(String)
    /// The URL is not a connection URL libpq understands.
    case invalidURL(String)
    /// A write method was called on the repository of a `read` closure.
    case writeInReadTransaction(operation: String)
    /// A repository was used after its `read` or `write` closure returned.
    case repositoryUsedAfterTransaction(operation: String)
    /// `write` was called from inside a write closure on the same thread.
    case nestedWrite
    /// A stored value cannot be decoded (an unknown enum raw value, a bad permission list, ...).
    case corruptValue(table: String, column: String, value: String)
    /// The database was migrated by a newer build that knows versions this code does not.
    case databaseNewerThanCode(database: String, databaseVersion: Int, latestKnownVersion: Int)
    /// The database records a schema version that is not in this code's list.
    case unknownAppliedVersion(database: String, version: Int)

    public var description: String {
        switch self {
        case .unavailable(let message):
            "the PostgreSQL database is unavailable: \(message)"
        case .invalidURL(let message):
            "invalid PostgreSQL URL: \(message)"
        case .writeInReadTransaction(let operation):
            "\(operation) is a write and was called inside PostgresStore.read; use PostgresStore.write"
        case .repositoryUsedAfterTransaction(let operation):
            "\(operation) was called on a repository after its transaction ended; use the repository only inside its closure"
        case .nestedWrite:
            "PostgresStore.write was called inside a write closure; do all the work in the outer closure"
        case .corruptValue(let table, let column, let value):
            "stored value \(value) in \(table).\(column) is not valid for this build"
        case .databaseNewerThanCode(let database, let databaseVersion, let latestKnownVersion):
            "database \(database) has schema version \(databaseVersion), newer than the latest this build knows "
                + "(\(latestKnownVersion)); refusing to open it: upgrade the server instead"
        case .unknownAppliedVersion(let database, let version):
            "database \(database) records schema version \(version), which this build does not know; refusing to open it"
        }
    }
}
