public import SessionCore

/// `SessionRepository` over one open SQLite transaction.
///
/// A repository is handed to the closure of `SQLiteStore.write` (inside
/// `BEGIN IMMEDIATE … COMMIT`) or `SQLiteStore.read` (inside a read
/// transaction: one consistent snapshot), and is only valid inside that
/// closure: afterwards every method throws
/// ``SQLiteStoreError/repositoryUsedAfterTransaction(operation:)``. It is not
/// `Sendable`: it belongs to the thread running the closure.
///
/// Constraint violations that the contract anticipates become `DomainError`s
/// (`ALREADY_EXISTS`, `NOT_FOUND`, `ABORTED`, ...); any other SQLite failure
/// is thrown as an ``SQLiteError`` carrying the code, message and SQL.
public final class SQLiteRepository: SessionRepository {
    /// Whether the repository may write.
    enum Access {
        case readOnly
        case readWrite
    }

    let connection: SQLiteConnection
    let access: Access
    private var isValid = true

    init(connection: SQLiteConnection, access: Access) {
        self.connection = connection
        self.access = access
    }

    /// Ends the repository's life: called when its closure returns.
    func invalidate() {
        isValid = false
    }

    /// The connection, for a read; throws if the transaction is over.
    func reader(_ operation: @autoclosure () -> String) throws -> SQLiteConnection {
        guard isValid else { throw SQLiteStoreError.repositoryUsedAfterTransaction(operation: operation()) }
        return connection
    }

    /// The connection, for a write; throws if the transaction is over or read-only.
    func writer(_ operation: @autoclosure () -> String) throws -> SQLiteConnection {
        guard isValid else { throw SQLiteStoreError.repositoryUsedAfterTransaction(operation: operation()) }
        guard access == .readWrite else { throw SQLiteStoreError.writeInReadTransaction(operation: operation()) }
        return connection
    }

    /// A page size for SQL: SQLite reads a negative LIMIT as "no limit".
    static func limit(_ limit: Int) -> Int { max(0, limit) }
}
