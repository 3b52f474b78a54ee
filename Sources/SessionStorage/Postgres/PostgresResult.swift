internal import CLibPQ

/// The result of one statement: owns its `PGresult*` and frees it with
/// `PQclear` in `deinit`. Values are read in text format.
package final class PostgresResult {
    private let handle: OpaquePointer
    /// The statement that produced the result, for error messages.
    package let sql: String

    /// Takes ownership of `handle`.
    init(handle: OpaquePointer, sql: String) {
        self.handle = handle
        self.sql = sql
    }

    deinit {
        PQclear(handle)
    }

    /// The number of rows returned.
    package var rowCount: Int { Int(PQntuples(handle)) }

    /// The number of columns per row.
    package var columnCount: Int { Int(PQnfields(handle)) }

    /// The number of rows an INSERT, UPDATE or DELETE affected (0 for other statements).
    package var affectedRows: Int {
        guard let text = PQcmdTuples(handle), text.pointee != 0 else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The command tag (`INSERT 0 1`, `COMMIT`, `ROLLBACK`, ...).
    package var commandStatus: String {
        PQcmdStatus(handle).map { String(cString: $0) } ?? ""
    }

    /// Row `index` (0-based).
    package func row(_ index: Int) -> PostgresRow {
        PostgresRow(result: self, index: Int32(index))
    }

    // MARK: Cells

    func checkColumn(_ column: Int32) throws {
        guard column >= 0, column < PQnfields(handle) else {
            throw PostgresError.misuse("column \(column) is out of range (\(PQnfields(handle)) columns)", sql: sql)
        }
    }

    func isNull(_ row: Int32, _ column: Int32) -> Bool {
        PQgetisnull(handle, row, column) != 0
    }

    /// The cell as text (PostgreSQL's text output format); `nil` for SQL NULL.
    func text(_ row: Int32, _ column: Int32) throws -> String? {
        try checkColumn(column)
        guard row >= 0, row < PQntuples(handle) else {
            throw PostgresError.misuse("row \(row) is out of range (\(PQntuples(handle)) rows)", sql: sql)
        }
        guard !isNull(row, column), let value = PQgetvalue(handle, row, column) else { return nil }
        return String(cString: value)
    }

    /// The name of column `column`.
    func columnName(_ column: Int32) -> String {
        PQfname(handle, column).map { String(cString: $0) } ?? "#\(column)"
    }
}
