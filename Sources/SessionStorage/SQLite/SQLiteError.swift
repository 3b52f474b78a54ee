internal import CSQLite

/// An error reported by SQLite, or by the wrapper about its use of SQLite.
///
/// It carries the extended result code, the message of `sqlite3_errmsg` (or
/// the wrapper's own message) and, when known, the SQL that failed, so that an
/// unexpected failure can be diagnosed from the log line alone.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The extended result code (see <https://www.sqlite.org/rescode.html>).
    public let code: Int32
    /// The error message.
    public let message: String
    /// The SQL statement that failed, if the failure belongs to one.
    public let sql: String?

    /// Creates an error from its parts.
    public init(code: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    /// The primary result code: the low 8 bits of ``code``.
    public var primaryCode: Int32 { code & 0xFF }

    /// SQLite's English name for ``code`` (`sqlite3_errstr`).
    public var codeDescription: String { String(cString: sqlite3_errstr(code)) }

    /// True for every kind of constraint violation (UNIQUE, FOREIGN KEY, CHECK, NOT NULL, ...).
    public var isConstraintViolation: Bool { primaryCode == SQLITE_CONSTRAINT }

    public var description: String {
        var text = "SQLite error \(code) (\(codeDescription)): \(message)"
        if let sql { text += " [SQL: \(sql)]" }
        return text
    }
}

extension SQLiteError {
    /// The error currently recorded on a connection, for a call that returned `code`.
    static func from(connection: OpaquePointer?, code: Int32, sql: String?) -> SQLiteError {
        // sqlite3_extended_errcode is more precise than `code` when the call
        // returned a primary code; fall back on `code` when there is no handle.
        guard let connection else {
            return SQLiteError(code: code, message: String(cString: sqlite3_errstr(code)), sql: sql)
        }
        let extended = sqlite3_extended_errcode(connection)
        let reported = (extended & 0xFF) == (code & 0xFF) ? extended : code
        return SQLiteError(code: reported, message: String(cString: sqlite3_errmsg(connection)), sql: sql)
    }

    /// An error for a misuse detected by the wrapper itself (not by SQLite).
    static func misuse(_ message: String, sql: String? = nil) -> SQLiteError {
        SQLiteError(code: SQLITE_MISUSE, message: message, sql: sql)
    }

    /// An error for a column value whose type is not the one the reader expects.
    static func mismatch(_ message: String, sql: String?) -> SQLiteError {
        SQLiteError(code: SQLITE_MISMATCH, message: message, sql: sql)
    }
}

extension SQLiteError {
    /// The kind of constraint a `SQLITE_CONSTRAINT` error violated.
    package enum Constraint: Sendable, Hashable {
        case primaryKey
        case unique
        case foreignKey
        case check
        case notNull
        case other
    }

    /// The violated constraint, or `nil` when this is not a constraint violation.
    package var constraint: Constraint? {
        guard isConstraintViolation else { return nil }
        switch code {
        case CSQLITE_CONSTRAINT_PRIMARYKEY: return .primaryKey
        case CSQLITE_CONSTRAINT_UNIQUE: return .unique
        case CSQLITE_CONSTRAINT_FOREIGNKEY: return .foreignKey
        case CSQLITE_CONSTRAINT_CHECK: return .check
        case CSQLITE_CONSTRAINT_NOTNULL: return .notNull
        default: return .other
        }
    }
}
