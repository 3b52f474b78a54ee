/// A parameter value as it is sent to PostgreSQL: text in PostgreSQL's input
/// syntax, or raw bytes for `bytea` (sent in binary format, so no escaping).
/// The server infers each parameter's type from the statement.
package enum PostgresValue: Sendable, Hashable {
    case null
    case text(String)
    case bytes([UInt8])
}

/// A Swift value that can be bound to a statement parameter.
package protocol PostgresBindable {
    /// The value to bind.
    var postgresValue: PostgresValue { get }
}

extension PostgresValue: PostgresBindable {
    package var postgresValue: PostgresValue { self }
}

extension Int64: PostgresBindable {
    package var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int: PostgresBindable {
    package var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int32: PostgresBindable {
    package var postgresValue: PostgresValue { .text(String(self)) }
}

extension Bool: PostgresBindable {
    package var postgresValue: PostgresValue { .text(self ? "true" : "false") }
}

extension String: PostgresBindable {
    package var postgresValue: PostgresValue { .text(self) }
}

extension Array: PostgresBindable where Element == UInt8 {
    package var postgresValue: PostgresValue { .bytes(self) }
}

extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    package var postgresValue: PostgresValue {
        switch self {
        case .none: .null
        case .some(let value): value.postgresValue
        }
    }
}
