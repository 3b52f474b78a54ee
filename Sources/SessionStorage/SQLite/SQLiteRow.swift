internal import CSQLite

/// The current row of a statement being stepped.
///
/// A row is only valid inside the closure it is passed to: it reads the
/// statement's current row and must not be kept.
///
/// Readers are strict: asking for a non-optional value of a NULL column, or an
/// integer from a text column, throws an `SQLITE_MISMATCH` ``SQLiteError``
/// naming the column, instead of silently converting as `sqlite3_column_*` do.
package struct SQLiteRow {
    let statement: SQLiteStatement

    /// True when the column holds NULL.
    package func isNull(_ index: Int32) -> Bool {
        sqlite3_column_type(statement.handle, index) == SQLITE_NULL
    }

    /// An INTEGER column.
    package func int64(_ index: Int32) throws -> Int64 {
        try expect(index, SQLITE_INTEGER, "INTEGER")
        return sqlite3_column_int64(statement.handle, index)
    }

    /// An INTEGER column that may be NULL.
    package func optionalInt64(_ index: Int32) throws -> Int64? {
        isNull(index) ? nil : try int64(index)
    }

    /// An INTEGER column read as `Int`.
    package func int(_ index: Int32) throws -> Int {
        Int(try int64(index))
    }

    /// An INTEGER column that may be NULL, read as `Int`.
    package func optionalInt(_ index: Int32) throws -> Int? {
        try optionalInt64(index).map { Int($0) }
    }

    /// An INTEGER column holding 0 or 1.
    package func bool(_ index: Int32) throws -> Bool {
        switch try int64(index) {
        case 0: return false
        case 1: return true
        case let other:
            throw SQLiteError.mismatch(
                "column \(statement.columnName(index)) holds \(other), expected 0 or 1", sql: statement.sql)
        }
    }

    /// A REAL column (an INTEGER one is converted).
    package func double(_ index: Int32) throws -> Double {
        let type = sqlite3_column_type(statement.handle, index)
        guard type == SQLITE_FLOAT || type == SQLITE_INTEGER else {
            try expect(index, SQLITE_FLOAT, "REAL")
            return 0
        }
        return sqlite3_column_double(statement.handle, index)
    }

    /// A REAL column that may be NULL.
    package func optionalDouble(_ index: Int32) throws -> Double? {
        isNull(index) ? nil : try double(index)
    }

    /// A TEXT column.
    package func string(_ index: Int32) throws -> String {
        try expect(index, SQLITE_TEXT, "TEXT")
        // Per SQLite's documentation: call sqlite3_column_text first, then sqlite3_column_bytes.
        guard let text = sqlite3_column_text(statement.handle, index) else {
            throw SQLiteError.from(connection: statement.connectionHandle, code: SQLITE_NOMEM, sql: statement.sql)
        }
        let count = Int(sqlite3_column_bytes(statement.handle, index))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// A TEXT column that may be NULL.
    package func optionalString(_ index: Int32) throws -> String? {
        isNull(index) ? nil : try string(index)
    }

    /// A BLOB column.
    package func blob(_ index: Int32) throws -> [UInt8] {
        try expect(index, SQLITE_BLOB, "BLOB")
        let count = Int(sqlite3_column_bytes(statement.handle, index))
        guard count > 0 else { return [] }
        guard let bytes = sqlite3_column_blob(statement.handle, index) else {
            throw SQLiteError.from(connection: statement.connectionHandle, code: SQLITE_NOMEM, sql: statement.sql)
        }
        return [UInt8](UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// A BLOB column that may be NULL.
    package func optionalBlob(_ index: Int32) throws -> [UInt8]? {
        isNull(index) ? nil : try blob(index)
    }

    /// The column's value, whatever its storage class.
    package func value(_ index: Int32) throws -> SQLiteValue {
        switch sqlite3_column_type(statement.handle, index) {
        case SQLITE_INTEGER: .integer(try int64(index))
        case SQLITE_FLOAT: .real(try double(index))
        case SQLITE_TEXT: .text(try string(index))
        case SQLITE_BLOB: .blob(try blob(index))
        default: .null
        }
    }

    private func expect(_ index: Int32, _ type: Int32, _ typeName: String) throws {
        guard index >= 0, index < statement.columnCount else {
            throw SQLiteError(
                code: SQLITE_RANGE,
                message: "column index \(index) out of range 0..<\(statement.columnCount)",
                sql: statement.sql
            )
        }
        let actual = sqlite3_column_type(statement.handle, index)
        guard actual == type else {
            let actualName =
                switch actual {
                case SQLITE_NULL: "NULL"
                case SQLITE_INTEGER: "INTEGER"
                case SQLITE_FLOAT: "REAL"
                case SQLITE_TEXT: "TEXT"
                default: "BLOB"
                }
            throw SQLiteError.mismatch(
                "column \(statement.columnName(index)) is \(actualName), expected \(typeName)", sql: statement.sql)
        }
    }
}
