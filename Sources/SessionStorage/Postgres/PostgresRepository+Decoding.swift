public import SessionCore

// Column lists and row decoders live in StoredRow.swift (shared by both stores).

extension Timestamp: PostgresBindable {
    package var postgresValue: PostgresValue { .text(String(millisecondsSinceEpoch)) }
}

extension Milliseconds: PostgresBindable {
    package var postgresValue: PostgresValue { .text(String(value)) }
}
