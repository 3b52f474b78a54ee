/// One row of a `PostgresResult`, with typed accessors that throw on NULL or a
/// value of the wrong shape (never trap).
package struct PostgresRow {
    let result: PostgresResult
    let index: Int32

    /// True if column `column` is SQL NULL.
    package func isNull(_ column: Int32) -> Bool {
        result.isNull(index, column)
    }

    /// A non-NULL text column.
    package func string(_ column: Int32) throws -> String {
        guard let text = try result.text(index, column) else { throw nullError(column) }
        return text
    }

    /// A text column that may be NULL.
    package func optionalString(_ column: Int32) throws -> String? {
        try result.text(index, column)
    }

    /// A non-NULL integer column (`bigint`, `integer`, ...).
    package func int64(_ column: Int32) throws -> Int64 {
        guard let value = try optionalInt64(column) else { throw nullError(column) }
        return value
    }

    /// An integer column that may be NULL.
    package func optionalInt64(_ column: Int32) throws -> Int64? {
        guard let text = try result.text(index, column) else { return nil }
        guard let value = Int64(text) else {
            throw PostgresError.mismatch("column \(result.columnName(column)) holds \(text), not an integer", sql: result.sql)
        }
        return value
    }

    /// A non-NULL integer column as `Int`.
    package func int(_ column: Int32) throws -> Int {
        Int(try int64(column))
    }

    /// A non-NULL `boolean` column.
    package func bool(_ column: Int32) throws -> Bool {
        switch try string(column) {
        case "t", "true": return true
        case "f", "false": return false
        case let other:
            throw PostgresError.mismatch("column \(result.columnName(column)) holds \(other), not a boolean", sql: result.sql)
        }
    }

    /// A non-NULL `bytea` column (hex output format, which the store sets).
    package func bytes(_ column: Int32) throws -> [UInt8] {
        let text = try string(column)
        guard let bytes = Self.decodeHexBytea(text) else {
            throw PostgresError.mismatch("column \(result.columnName(column)) is not hex-encoded bytea", sql: result.sql)
        }
        return bytes
    }

    /// Decodes `\x0a1b...`; `nil` if `text` is not in that form.
    static func decodeHexBytea(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            return nil
        }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var i = 2
        while i < utf8.count {
            guard let high = nibble(utf8[i]), let low = nibble(utf8[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }

    private func nullError(_ column: Int32) -> PostgresError {
        PostgresError.mismatch("column \(result.columnName(column)) is NULL", sql: result.sql)
    }
}
