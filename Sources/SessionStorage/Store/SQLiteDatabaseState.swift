/// What an existing SQLite database file looks like before it is opened for
/// writing (``SQLiteStore/inspect(path:)``).
public enum SQLiteDatabaseState: Sendable, Hashable {
    /// No file at the path.
    case missing
    /// A file of zero bytes.
    case empty
    /// A valid database without any table (never initialised, or wiped).
    case noSchema
    /// Not a database, or `PRAGMA quick_check` reports damage.
    case damaged(String)
    /// A database with a schema that passes `PRAGMA quick_check`.
    case healthy
}
