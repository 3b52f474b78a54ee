/// Why bytes could not be turned into a message: invalid wire encoding,
/// invalid UTF-8 in a `string` field, or an enum value the schema does not know.
public struct ProtoDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `Message.field` (or the message type for a wire-level failure).
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}
