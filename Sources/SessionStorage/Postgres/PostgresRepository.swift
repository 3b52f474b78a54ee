public import SessionCore

/// `SessionRepository` over one open PostgreSQL transaction.
///
/// A repository is handed to the closure of `PostgresStore.write` (under the
/// write lock) or `PostgresStore.read` (one consistent snapshot), and is only
/// valid inside that closure: afterwards every method throws
/// ``PostgresStoreError/repositoryUsedAfterTransaction(operation:)``. It is not
/// `Sendable`: it belongs to the thread running the closure.
///
/// Behaves exactly like ``SQLiteRepository``: same orderings, same
/// `DomainError`s (`ALREADY_EXISTS`, `NOT_FOUND`, `ABORTED`, ...) with the same
/// messages. Anticipated refusals are detected without raising an SQL error
/// (`ON CONFLICT DO NOTHING`, `WHERE EXISTS`), because an SQL error aborts a
/// PostgreSQL transaction and the caller may go on after a `DomainError`. Any
/// other failure is thrown as a ``PostgresError`` carrying the SQLSTATE,
/// message and SQL.
public final class PostgresRepository: SessionRepository {
    /// Whether the repository may write.
    enum Access {
        case readOnly
        case readWrite
    }

    let connection: PostgresConnection
    let access: Access
    private var isValid = true

    init(connection: PostgresConnection, access: Access) {
        self.connection = connection
        self.access = access
    }

    /// Ends the repository's life: called when its closure returns.
    func invalidate() {
        isValid = false
    }

    /// The connection, for a read; throws if the transaction is over.
    func reader(_ operation: @autoclosure () -> String) throws -> PostgresConnection {
        guard isValid else { throw PostgresStoreError.repositoryUsedAfterTransaction(operation: operation()) }
        return connection
    }

    /// The connection, for a write; throws if the transaction is over or read-only.
    func writer(_ operation: @autoclosure () -> String) throws -> PostgresConnection {
        guard isValid else { throw PostgresStoreError.repositoryUsedAfterTransaction(operation: operation()) }
        guard access == .readWrite else { throw PostgresStoreError.writeInReadTransaction(operation: operation()) }
        return connection
    }

    /// A page size for SQL: PostgreSQL refuses a negative LIMIT; the contract reads it as 0.
    static func limit(_ limit: Int) -> Int { max(0, limit) }
}
