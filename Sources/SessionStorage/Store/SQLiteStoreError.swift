/// A misuse of the SQLite store detected before reaching SQLite.
public enum SQLiteStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A write method was called on the repository of a `read` closure.
    case writeInReadTransaction(operation: String)
    /// A repository was used after its `read` or `write` closure returned.
    case repositoryUsedAfterTransaction(operation: String)
    /// `write` (or `checkpoint`) was called from inside a write closure.
    case nestedWrite
    /// A stored value cannot be decoded (an unknown enum raw value, a bad permission list, ...).
    case corruptValue(table: String, column: String, value: String)

    public var description: String {
        switch self {
        case .writeInReadTransaction(let operation):
            "\(operation) is a write and was called inside SQLiteStore.read; use SQLiteStore.write"
        case .repositoryUsedAfterTransaction(let operation):
            "\(operation) was called on a repository after its transaction ended; use the repository only inside its closure"
        case .nestedWrite:
            "SQLiteStore.write was called inside a write closure; do all the work in the outer closure"
        case .corruptValue(let table, let column, let value):
            "stored value \(value) in \(table).\(column) is not valid for this build"
        }
    }
}
