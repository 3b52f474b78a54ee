public import SessionCore

// Column lists and row decoders live in StoredRow.swift (shared by both stores).

extension Timestamp: SQLiteBindable {
    package var sqliteValue: SQLiteValue { .integer(millisecondsSinceEpoch) }
}

extension Milliseconds: SQLiteBindable {
    package var sqliteValue: SQLiteValue { .integer(value) }
}
