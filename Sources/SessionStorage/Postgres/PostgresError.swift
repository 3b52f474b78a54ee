/// An error reported by PostgreSQL or libpq, or by the wrapper about its use of libpq.
///
/// It carries the SQLSTATE (when the server sent one), the message and, when
/// known, the SQL that failed, so that an unexpected failure can be diagnosed
/// from the log line alone. Parameter values are never included: they may be
/// customer data or credentials.
public struct PostgresError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The five-character SQLSTATE (`23505`, `08006`, ...), or `nil` when the
    /// failure happened on the client side (a lost connection, a refused connect).
    public let sqlState: String?
    /// The primary message.
    public let message: String
    /// The server's detail line, if any.
    public let detail: String?
    /// The violated constraint, for integrity-constraint violations.
    public let constraint: String?
    /// The SQL that failed, if the failure belongs to one statement.
    public let sql: String?
    /// True when the connection was unusable after the failure (`PQstatus` was `CONNECTION_BAD`).
    public let connectionLost: Bool

    /// Creates an error from its parts.
    public init(
        sqlState: String?, message: String, detail: String? = nil, constraint: String? = nil, sql: String? = nil,
        connectionLost: Bool = false
    ) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
        self.sql = sql
        self.connectionLost = connectionLost
    }

    /// True when the database cannot be reached or went away: a lost or refused
    /// connection, SQLSTATE class 08 (connection exception), 57P01 (admin
    /// shutdown), 57P02 (crash shutdown) or 57P03 (cannot connect now).
    public var meansUnavailable: Bool {
        if connectionLost { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    /// True for a conflict that a retry of the whole transaction may resolve:
    /// 40001 (serialization failure) and 40P01 (deadlock detected).
    public var isTransient: Bool {
        sqlState == "40001" || sqlState == "40P01"
    }

    public var description: String {
        var text = "PostgreSQL error"
        if let sqlState { text += " \(sqlState)" }
        text += ": \(message)"
        if let detail { text += " (\(detail))" }
        if let sql { text += " [SQL: \(sql)]" }
        return text
    }
}

extension PostgresError {
    /// An error for a misuse detected by the wrapper itself (not by PostgreSQL).
    static func misuse(_ message: String, sql: String? = nil) -> PostgresError {
        PostgresError(sqlState: nil, message: message, sql: sql)
    }

    /// An error for a column value that is not what the reader expects.
    static func mismatch(_ message: String, sql: String?) -> PostgresError {
        // 22000: data exception.
        PostgresError(sqlState: "22000", message: message, sql: sql)
    }
}
