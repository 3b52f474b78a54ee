/// What a store failure means for the server: the one place that knows which
/// SQLite result codes, PostgreSQL conditions and store errors are passing
/// outages, which mean the files cannot be written, and which mean the data
/// itself is damaged.
public enum StoreErrorKind: Sendable, Hashable {
    /// The store cannot take the call now but may later (SQLite BUSY, LOCKED,
    /// IOERR, FULL; PostgreSQL unreachable or restarting).
    case unavailable
    /// The database files cannot be created or written (SQLite PERM,
    /// READONLY, CANTOPEN).
    case notWritable
    /// The database is damaged (SQLite CORRUPT or NOTADB; PostgreSQL XX001
    /// data corrupted, XX002 index corrupted): nothing read from it can be
    /// trusted.
    case damaged
    /// Anything else.
    case other

    /// Classifies `error` as thrown by `SQLiteStore` or `PostgresStore`.
    public static func of(_ error: any Error) -> StoreErrorKind {
        switch error {
        case let e as SQLiteError:
            switch e.primaryCode {
            case 5, 6, 10, 13: return .unavailable  // BUSY, LOCKED, IOERR, FULL
            case 3, 8, 14: return .notWritable  // PERM, READONLY, CANTOPEN
            case 11, 26: return .damaged  // CORRUPT, NOTADB
            default: return .other
            }
        case is FileJournal.Damaged, is JournalCodec.Corrupt:
            return .damaged
        case PostgresStoreError.unavailable:
            return .unavailable
        case let e as PostgresError:
            if e.meansUnavailable { return .unavailable }
            if e.sqlState == "XX001" || e.sqlState == "XX002" { return .damaged }
            return .other
        default:
            return .other
        }
    }
}
