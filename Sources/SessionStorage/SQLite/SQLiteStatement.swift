internal import CSQLite

/// One prepared statement: owns its `sqlite3_stmt` and finalizes it in `deinit`.
///
/// A statement belongs to the connection that prepared it and is used on that
/// connection's thread only. It holds the raw connection handle (not the
/// `SQLiteConnection`) so that the connection's statement cache creates no
/// reference cycle; this is memory-safe because connections close with
/// `sqlite3_close_v2`, which keeps the handle alive until its last statement is
/// finalized.
package final class SQLiteStatement {
    /// The `sqlite3_stmt*`.
    let handle: OpaquePointer
    /// The connection's `sqlite3*`.
    let connectionHandle: OpaquePointer
    /// The SQL the statement was prepared from.
    package let sql: String
    /// True while a caller is using the statement (checked out of the cache).
    var isInUse = false

    /// Prepares the single SQL statement `sql` on `connectionHandle`.
    init(connectionHandle: OpaquePointer, sql: String, persistent: Bool) throws {
        var statement: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let code = sql.withCString { text in
            let code = sqlite3_prepare_v3(connectionHandle, text, -1, flags, &statement, &tail)
            // Anything after the first statement, other than blanks and a
            // semicolon, would be silently ignored: refuse it instead.
            if code == SQLITE_OK, let tail, !Self.isBlank(tail) {
                return SQLITE_MISUSE
            }
            return code
        }
        guard code == SQLITE_OK else {
            if let statement { sqlite3_finalize(statement) }
            if code == SQLITE_MISUSE {
                throw SQLiteError.misuse("more than one statement in one prepared statement", sql: sql)
            }
            throw SQLiteError.from(connection: connectionHandle, code: code, sql: sql)
        }
        guard let statement else {
            throw SQLiteError.misuse("empty SQL statement", sql: sql)
        }
        self.handle = statement
        self.connectionHandle = connectionHandle
        self.sql = sql
    }

    deinit {
        // sqlite3_finalize returns the error of the last step, if any, which
        // was already reported by `step()`: the statement is freed regardless.
        sqlite3_finalize(handle)
    }

    private static func isBlank(_ text: UnsafePointer<CChar>) -> Bool {
        var cursor = text
        while cursor.pointee != 0 {
            switch UInt8(bitPattern: cursor.pointee) {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: ";"):
                cursor += 1
            default:
                return false
            }
        }
        return true
    }

    // MARK: Binding

    /// Binds `values` to the statement's parameters, in order.
    ///
    /// Text and blobs are bound with `SQLITE_TRANSIENT`, so SQLite copies them.
    package func bind(_ values: [any SQLiteBindable]) throws {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard expected == values.count else {
            throw SQLiteError(
                code: SQLITE_RANGE,
                message: "statement expects \(expected) arguments, got \(values.count)",
                sql: sql
            )
        }
        for (offset, value) in values.enumerated() {
            try bind(value.sqliteValue, at: Int32(offset + 1))
        }
    }

    private func bind(_ value: SQLiteValue, at index: Int32) throws {
        let code: Int32
        switch value {
        case .null:
            code = sqlite3_bind_null(handle, index)
        case .integer(let integer):
            code = sqlite3_bind_int64(handle, index, integer)
        case .real(let real):
            code = sqlite3_bind_double(handle, index, real)
        case .text(var text):
            code = text.withUTF8 { bytes in
                // An empty buffer may have no base address, and a NULL pointer
                // would bind SQL NULL: bind an empty C string instead.
                guard let base = bytes.baseAddress, !bytes.isEmpty else {
                    return sqlite3_bind_text64(handle, index, "", 0, csqlite_transient(), UInt8(SQLITE_UTF8))
                }
                return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { chars in
                    sqlite3_bind_text64(
                        handle, index, chars, sqlite3_uint64(bytes.count), csqlite_transient(), UInt8(SQLITE_UTF8))
                }
            }
        case .blob(let bytes):
            code = bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress, !buffer.isEmpty else {
                    return sqlite3_bind_zeroblob(handle, index, 0)
                }
                return sqlite3_bind_blob64(handle, index, base, sqlite3_uint64(buffer.count), csqlite_transient())
            }
        }
        guard code == SQLITE_OK else {
            throw SQLiteError.from(connection: connectionHandle, code: code, sql: sql)
        }
    }

    // MARK: Binding one value (the journal's hot rows: no array of existentials per row)

    /// Binds an integer to parameter `index` (1-based).
    package func bind(_ value: Int64, at index: Int32) throws {
        rowBindings += 1
        try check(sqlite3_bind_int64(handle, index, value))
    }

    /// Binds an integer, or NULL for nil, to parameter `index` (1-based).
    package func bind(_ value: Int64?, at index: Int32) throws {
        rowBindings += 1
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try check(sqlite3_bind_int64(handle, index, value))
    }

    /// Binds text, or NULL for nil, to parameter `index` (1-based): copied by SQLite, or, between
    /// ``beginRows()`` and ``endRows()``, into the statement's row arena.
    package func bind(_ value: String?, at index: Int32) throws {
        rowBindings += 1
        guard var value else { return try check(sqlite3_bind_null(handle, index)) }
        guard bindingRows else { return try bind(.text(value), at: index) }
        let code = value.withUTF8 { bytes in
            let text = arena.copy(bytes)
            // SQLITE_STATIC (a nil destructor): SQLite keeps the pointer, does not copy.
            return sqlite3_bind_text64(handle, index, text, sqlite3_uint64(bytes.count), nil, UInt8(SQLITE_UTF8))
        }
        try check(code)
    }

    // MARK: Many rows through one statement

    /// While set, text is bound from here: SQLite binds it without a copy (its own copy is a
    /// malloc, a memcpy and, at the next binding, a free: ~650 instructions per text value, about
    /// a tenth of what the materializer spends per row). The text of the row being bound stays
    /// valid until the next ``startRow()``.
    private var bindingRows = false
    /// Made at the first batch and kept with the (cached) statement.
    private lazy var arena = RowArena()
    /// One-value bindings since the row began, and the statement's parameter count: a row that
    /// left a parameter unbound would step with the previous row's text, freed by now.
    private var rowBindings = 0
    private lazy var parameterCount = Int(sqlite3_bind_parameter_count(handle))

    /// Binds text without copies from now on, each row after a ``startRow()``; ``endRows()`` ends it.
    func beginRows() { bindingRows = true }

    /// The previous row was stepped: its text may go.
    func startRow() {
        arena.reset()
        rowBindings = 0
    }

    /// The row is bound: every parameter must have been (checked in release builds too: it is
    /// what keeps SQLite from reading text the arena has reused).
    func checkRowBound() {
        precondition(rowBindings >= parameterCount, "a row bound \(rowBindings) of the \(parameterCount) parameters of: \(sql)")
    }

    /// Resets the statement, clears the bindings (nothing may point into the arena afterwards)
    /// and keeps the arena for the next batch.
    func endRows() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        arena.reset()
        bindingRows = false
    }

    private func check(_ code: Int32) throws {
        guard code == SQLITE_OK else { throw SQLiteError.from(connection: connectionHandle, code: code, sql: sql) }
    }

    /// Resets the statement for another run with every parameter bound again (bindings kept).
    func resetKeepingBindings() {
        sqlite3_reset(handle)
    }

    // MARK: Stepping

    /// Advances to the next row: true when a row is available, false when done.
    package func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW:
            return true
        case SQLITE_DONE:
            return false
        case let code:
            throw SQLiteError.from(connection: connectionHandle, code: code, sql: sql)
        }
    }

    /// Resets the statement and clears its bindings so that it can run again.
    func reset() {
        // sqlite3_reset repeats the error of the last step, which `step()` has
        // already thrown; sqlite3_clear_bindings always returns SQLITE_OK.
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// The number of result columns.
    package var columnCount: Int32 { sqlite3_column_count(handle) }

    /// The name of a result column.
    package func columnName(_ index: Int32) -> String {
        guard let name = sqlite3_column_name(handle, index) else { return "#\(index)" }
        return String(cString: name)
    }
}

/// The text of one row, bound with SQLITE_STATIC. A chunk that fills up is kept (earlier values
/// of the row point into it) until the row is done; values are never moved.
final class RowArena {
    private var chunk: UnsafeMutableRawPointer
    private var capacity: Int
    private var used = 0
    private var retired: [UnsafeMutableRawPointer] = []

    init(capacity: Int = 4096) {
        self.capacity = capacity
        self.chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        chunk.deallocate()
        for old in retired { old.deallocate() }
    }

    /// A copy of `bytes` that stays put until ``reset()`` (a valid pointer even when empty).
    func copy(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar> {
        if used + bytes.count > capacity {
            retired.append(chunk)
            capacity = max(capacity * 2, bytes.count)
            chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            used = 0
        }
        let start = chunk + used
        if let base = bytes.baseAddress, !bytes.isEmpty { start.copyMemory(from: base, byteCount: bytes.count) }
        used += bytes.count
        return UnsafePointer(start.assumingMemoryBound(to: CChar.self))
    }

    func reset() {
        for old in retired { old.deallocate() }
        retired.removeAll(keepingCapacity: true)
        used = 0
    }
}
