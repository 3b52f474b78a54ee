internal import CLibPQ
internal import Foundation

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// One PostgreSQL connection: owns its `PGconn*`, opened with
/// `PQconnectdbParams` and closed with `PQfinish` in `deinit`.
///
/// Every statement that takes values runs as a prepared statement with bound
/// parameters (`PQprepare` once per connection and SQL text, then
/// `PQexecPrepared`); values are never spliced into SQL. Scripts without
/// parameters (migrations, `BEGIN`) go through `PQexec`.
///
/// A connection is not thread-safe: its owner (a pool) lends it to one thread
/// at a time.
package final class PostgresConnection {
    /// How to open a connection.
    package struct Configuration: Sendable, Hashable {
        /// A `postgres://user@host:port/database` URL (any libpq connection URI).
        package var url: String
        /// libpq's `connect_timeout`, in whole seconds (libpq treats values below 2 as 2).
        package var connectTimeoutSeconds = 5
        /// Shown in `pg_stat_activity`.
        package var applicationName = "sessiond"
        /// Server settings for the session (`-c name=value`); values must not contain spaces.
        package var settings: [String: String] = [:]

        /// A configuration for `url` with the defaults.
        package init(url: String) {
            self.url = url
        }
    }

    let handle: OpaquePointer
    /// The configuration the connection was opened with.
    package let configuration: Configuration
    private var preparedNames: [String: String] = [:]
    private static let preparedCapacity = 256

    /// Connects. A refused, timed-out or rejected connection (bad credentials
    /// and a missing database included: libpq reports those without an
    /// SQLSTATE) throws a ``PostgresError`` with `connectionLost` set.
    package init(configuration: Configuration) throws {
        var parameters: [(String, String)] = [
            // First, so that the keywords after it override what the URL says.
            ("dbname", configuration.url),
            ("connect_timeout", String(max(2, configuration.connectTimeoutSeconds))),
            ("client_encoding", "UTF8"),
            ("application_name", configuration.applicationName),
            // A server that vanishes without closing the socket is noticed
            // instead of hanging a call forever.
            ("keepalives", "1"),
            ("keepalives_idle", "10"),
            ("keepalives_interval", "5"),
            ("keepalives_count", "3"),
        ]
        if !configuration.settings.isEmpty {
            let options = configuration.settings.sorted { $0.key < $1.key }.map { "-c \($0.key)=\($0.value)" }
            parameters.append(("options", options.joined(separator: " ")))
        }
        let connection = Self.withCStringArrays(parameters) { keywords, values in
            PQconnectdbParams(keywords, values, 1)
        }
        guard let connection else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection", connectionLost: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection)) ?? "connection failed"
            PQfinish(connection)
            throw PostgresError(sqlState: nil, message: message, connectionLost: true)
        }
        // libpq prints notices, and the FATAL notice a server sends to idle
        // connections when it shuts down, on stderr; the store reports
        // failures through errors instead.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        self.handle = connection
        self.configuration = configuration
    }

    deinit {
        // Prepared statements and any open transaction die with the session.
        PQfinish(handle)
    }

    // MARK: State

    /// True while the connection is usable.
    package var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// True when no transaction is open and the connection is usable.
    package var isIdle: Bool { isHealthy && PQtransactionStatus(handle) == PQTRANS_IDLE }

    /// True when a transaction block is open (possibly failed).
    package var isInTransaction: Bool {
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    /// True when the open transaction has failed and can only be rolled back.
    package var isInFailedTransaction: Bool { PQtransactionStatus(handle) == PQTRANS_INERROR }

    /// Reads whatever the server sent while the connection sat idle (for
    /// example the notice of an administrator shutdown, then end-of-file) and
    /// reports whether the connection is still usable. Never blocks: libpq's
    /// socket is non-blocking.
    package func isAliveAfterIdling() -> Bool {
        guard isHealthy else { return false }
        guard PQconsumeInput(handle) == 1 else { return false }
        return isIdle
    }

    /// True when the server sent something while the connection sat idle with
    /// nothing asked: on a connection that does not LISTEN, that is the notice
    /// of its end (a shutdown, `pg_terminate_backend`, an idle timeout) or the
    /// end of the stream itself. Never blocks.
    package func receivedWhileIdle() -> Bool {
        let fd = PQsocket(handle)
        guard fd >= 0 else { return true }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) != 0
    }

    /// The server's major version times 10000 plus minor (`150014`).
    package var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// The number of statements prepared on this connection.
    package var preparedStatementCount: Int { preparedNames.count }

    // MARK: Running SQL

    /// Runs one or more semicolon-separated statements that take no parameters
    /// (DDL, `BEGIN`, `COMMIT`); returns the result of the last one.
    @discardableResult
    package func execute(_ script: String) throws -> PostgresResult {
        try checked(PQexec(handle, script), sql: script)
    }

    /// Runs one statement with `arguments` bound to `$1, $2, ...` and returns
    /// the number of rows it inserted, updated or deleted.
    @discardableResult
    package func run(_ sql: String, _ arguments: [any PostgresBindable] = []) throws -> Int {
        try statement(sql, arguments).affectedRows
    }

    /// Runs a query and decodes every row.
    package func query<T>(
        _ sql: String, _ arguments: [any PostgresBindable] = [], prepare: Bool = true, _ decode: (PostgresRow) throws -> T
    ) throws -> [T] {
        let result = try statement(sql, arguments, prepare: prepare)
        var rows: [T] = []
        rows.reserveCapacity(result.rowCount)
        for index in 0..<result.rowCount {
            rows.append(try decode(result.row(index)))
        }
        return rows
    }

    /// Runs a query and decodes its first row, if any.
    package func queryOne<T>(
        _ sql: String, _ arguments: [any PostgresBindable] = [], prepare: Bool = true, _ decode: (PostgresRow) throws -> T
    ) throws -> T? {
        let result = try statement(sql, arguments, prepare: prepare)
        guard result.rowCount > 0 else { return nil }
        return try decode(result.row(0))
    }

    /// Runs one parameterized statement, prepared once per connection (`prepare`: false for a text
    /// that is seldom repeated: sent with its parameters in one round trip, planned each time).
    package func statement(_ sql: String, _ arguments: [any PostgresBindable], prepare: Bool = true) throws -> PostgresResult {
        let values = arguments.map(\.postgresValue)
        let name: String?
        if let known = preparedNames[sql] {
            name = known
        } else if prepare, preparedNames.count < Self.preparedCapacity {
            let fresh = "s\(preparedNames.count + 1)"
            // Types are inferred by the server from the statement.
            _ = try checked(PQprepare(handle, fresh, sql, Int32(values.count), nil), sql: sql)
            preparedNames[sql] = fresh
            name = fresh
        } else {
            name = nil  // the cache is full: an unnamed, one-shot statement
        }
        return try Self.withParameters(values, sql: sql) { count, pointers, lengths, formats in
            let result: OpaquePointer?
            if let name {
                result = PQexecPrepared(handle, name, count, pointers, lengths, formats, 0)
            } else {
                result = PQexecParams(handle, sql, count, nil, pointers, lengths, formats, 0)
            }
            return try checked(result, sql: sql)
        }
    }

    // MARK: Transactions

    /// Runs `body` in a transaction opened by `begin` (`BEGIN`, or a script
    /// starting with it): commits when `body` returns, rolls back when it (or
    /// the commit) throws, and rethrows.
    ///
    /// A transaction that PostgreSQL already failed (an error that the body
    /// caught and ignored) is never reported as committed: `COMMIT` of a failed
    /// transaction is a silent rollback in PostgreSQL, so it is refused here.
    @discardableResult
    package func transaction<T>(_ begin: String = "BEGIN", _ body: () throws -> T) throws -> T {
        guard !isInTransaction else {
            throw PostgresError.misuse("a transaction is already open on this connection")
        }
        try execute(begin)
        do {
            let result = try body()
            try commit()
            return result
        } catch {
            rollbackAfterError()
            throw error
        }
    }

    /// Commits the open transaction; throws if it had failed or did not commit.
    package func commit() throws {
        guard !isInFailedTransaction else {
            throw PostgresError(
                sqlState: "25P02", message: "the transaction failed earlier and was rolled back instead of committed",
                sql: "COMMIT")
        }
        let result = try execute("COMMIT")
        let status = result.commandStatus
        guard status == "COMMIT" else {
            throw PostgresError(sqlState: "25P02", message: "COMMIT answered \(status)", sql: "COMMIT")
        }
    }

    /// Rolls back the open transaction, if any; a failure here (a lost
    /// connection) leaves the connection unhealthy and the pool discards it.
    package func rollbackAfterError() {
        guard isHealthy, isInTransaction else { return }
        _ = try? execute("ROLLBACK")
    }

    // MARK: Helpers

    /// Turns a `PGresult*` into a `PostgresResult`, or throws the error it carries.
    private func checked(_ result: OpaquePointer?, sql: String) throws -> PostgresResult {
        guard let result else {
            // NULL: out of memory, or the connection could not send the query.
            throw PostgresError(
                sqlState: nil, message: Self.trimmed(PQerrorMessage(handle)) ?? "no result", sql: sql,
                connectionLost: !isHealthy)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(handle: result, sql: sql)
        default:
            let error = PostgresError(
                sqlState: Self.field(result, CLIBPQ_DIAG_SQLSTATE),
                message: Self.field(result, CLIBPQ_DIAG_MESSAGE_PRIMARY)
                    ?? Self.trimmed(PQresultErrorMessage(result)) ?? Self.trimmed(PQerrorMessage(handle))
                    ?? "unknown error",
                detail: Self.field(result, CLIBPQ_DIAG_MESSAGE_DETAIL),
                constraint: Self.field(result, CLIBPQ_DIAG_CONSTRAINT_NAME),
                sql: sql,
                connectionLost: !isHealthy)
            PQclear(result)
            throw error
        }
    }

    private static func field(_ result: OpaquePointer, _ code: Int32) -> String? {
        PQresultErrorField(result, code).map { String(cString: $0) }
    }

    private static func trimmed(_ text: UnsafePointer<CChar>?) -> String? {
        guard let text else { return nil }
        let value = String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
        return value.isEmpty ? nil : value
    }

    /// Calls `body` with C arrays of the parameters: text values as
    /// NUL-terminated UTF-8 (format 0), bytes as binary (format 1).
    private static func withParameters<T>(
        _ values: [PostgresValue], sql: String,
        _ body: (Int32, [UnsafePointer<CChar>?], [Int32], [Int32]) throws -> T
    ) throws -> T {
        var buffers: [UnsafeMutableRawPointer?] = []
        defer { for buffer in buffers { free(buffer) } }
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for (index, value) in values.enumerated() {
            switch value {
            case .null:
                pointers.append(nil)
                lengths.append(0)
                formats.append(0)
            case .text(let text):
                // A text parameter ends at its first NUL: refuse rather than truncate.
                guard !text.utf8.contains(0) else {
                    throw PostgresError(
                        sqlState: "22021", message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot hold",
                        sql: sql)
                }
                guard let copy = strdup(text) else { throw PostgresError.misuse("out of memory", sql: sql) }
                buffers.append(copy)
                pointers.append(UnsafePointer(copy))
                lengths.append(0)
                formats.append(0)
            case .bytes(let bytes):
                guard let copy = malloc(max(1, bytes.count)) else { throw PostgresError.misuse("out of memory", sql: sql) }
                bytes.withUnsafeBytes { source in
                    if let base = source.baseAddress { copy.copyMemory(from: base, byteCount: bytes.count) }
                }
                buffers.append(copy)
                pointers.append(UnsafePointer(copy.assumingMemoryBound(to: CChar.self)))
                guard let length = Int32(exactly: bytes.count) else {
                    throw PostgresError.misuse("parameter $\(index + 1) is too large", sql: sql)
                }
                lengths.append(length)
                formats.append(1)
            }
        }
        return try body(Int32(values.count), pointers, lengths, formats)
    }

    /// Calls `body` with NULL-terminated C arrays of the keywords and values.
    private static func withCStringArrays<T>(
        _ pairs: [(String, String)], _ body: ([UnsafePointer<CChar>?], [UnsafePointer<CChar>?]) -> T
    ) -> T {
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            for pointer in keywords { free(pointer) }
            for pointer in values { free(pointer) }
        }
        func constant(_ pointers: [UnsafeMutablePointer<CChar>?]) -> [UnsafePointer<CChar>?] {
            pointers.map { $0.map { UnsafePointer($0) } } + [nil]
        }
        return body(constant(keywords), constant(values))
    }
}

extension PostgresConnection {
    /// Checks a connection URL's syntax with libpq (`PQconninfoParse`) without
    /// connecting; returns libpq's complaint, or `nil` when it parses.
    package static func syntaxError(in url: String) -> String? {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &message) else {
            defer { if let message { PQfreemem(message) } }
            return message.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) }
                ?? "cannot parse the connection URL"
        }
        PQconninfoFree(options)
        return nil
    }

    /// The URL's user, host, port and database, without the password: for messages.
    package static func describe(_ url: String) -> String {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &message) else {
            if let message { PQfreemem(message) }
            return "(unparsable URL)"
        }
        defer { PQconninfoFree(options) }
        var parts: [String: String] = [:]
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val {
                parts[String(cString: keyword)] = String(cString: value)
            }
            cursor += 1
        }
        let user = parts["user"].map { $0 + "@" } ?? ""
        let host = parts["host"] ?? parts["hostaddr"] ?? "localhost"
        let port = parts["port"].map { ":" + $0 } ?? ""
        return "postgres://\(user)\(host)\(port)/\(parts["dbname"] ?? "")"
    }
}
