/// Call metadata: an ordered list of key/value pairs with gRPC's key rules.
///
/// Keys are 1...255 characters of `[0-9a-z-_.]` and must not start with
/// `grpc-`. A key ending in `-bin` carries bytes; any other key carries
/// printable ASCII (0x20...0x7E). Keys are matched case-sensitively; add
/// lower-case keys.
public struct RPCMetadata: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    /// A metadata value: text for ordinary keys, bytes for `-bin` keys.
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case string(String)
        case binary([UInt8])

        /// The value's wire bytes.
        public var bytes: [UInt8] {
            switch self {
            case .string(let s): Array(s.utf8)
            case .binary(let b): b
            }
        }

        public var description: String {
            switch self {
            case .string(let s): s
            case .binary(let b): "<\(b.count) bytes>"
            }
        }
    }

    public private(set) var entries: [(key: String, value: Value)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, Value)...) {
        for (k, v) in elements { entries.append((k, v)) }
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    /// Appends a text value.
    public mutating func add(_ key: String, _ value: String) { entries.append((key, .string(value))) }
    /// Appends a binary value (the key should end in `-bin`).
    public mutating func add(_ key: String, binary: [UInt8]) { entries.append((key, .binary(binary))) }
    public mutating func add(_ key: String, _ value: Value) { entries.append((key, value)) }

    /// Replaces every value of `key` with `value`.
    public mutating func set(_ key: String, _ value: String) {
        entries.removeAll { $0.key == key }
        add(key, value)
    }

    /// The first text value of `key`.
    public subscript(key: String) -> String? {
        for e in entries where e.key == key {
            if case .string(let s) = e.value { return s }
        }
        return nil
    }

    /// Every value of `key`, in order.
    public func values(_ key: String) -> [Value] { entries.filter { $0.key == key }.map(\.value) }

    public func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> { entries.makeIterator() }

    public static func == (lhs: RPCMetadata, rhs: RPCMetadata) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for e in entries { hasher.combine(e.key); hasher.combine(e.value) }
    }

    /// Bytes the entries take on the wire (keys plus values), as counted
    /// against the server's metadata limit.
    public var wireSize: Int { entries.reduce(0) { $0 + $1.key.utf8.count + $1.value.bytes.count } }

    /// Why `key` is not a valid metadata key, or nil when it is.
    public static func keyProblem(_ key: String) -> String? {
        if key.isEmpty { return "metadata key is empty" }
        if key.utf8.count > 255 { return "metadata key '\(key.prefix(32))…' is longer than 255 bytes" }
        for b in key.utf8 {
            let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
            if !ok {
                return "metadata key '\(printable(key))' may contain only lower-case letters, digits, '-', '_' and '.'"
            }
        }
        if key.hasPrefix("grpc-") { return "metadata key '\(key)' uses the reserved 'grpc-' prefix" }
        return nil
    }

    /// Decodes wire entries, validating keys and values.
    package static func decode(_ pairs: [(key: String, value: [UInt8])]) throws(RPCError) -> RPCMetadata {
        var md = RPCMetadata()
        for (key, bytes) in pairs {
            if let problem = keyProblem(key) { throw RPCError(.invalidArgument, problem) }
            if key.hasSuffix("-bin") {
                md.entries.append((key, .binary(bytes)))
            } else {
                guard bytes.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else {
                    throw RPCError(.invalidArgument, "metadata value of '\(key)' must be printable ASCII; use a '-bin' key for bytes")
                }
                md.entries.append((key, .string(String(decoding: bytes, as: UTF8.self))))
            }
        }
        return md
    }

    /// Why these entries may not be sent, or nil.
    public func problem() -> String? {
        for (key, value) in entries {
            if let p = RPCMetadata.keyProblem(key) { return p }
            switch value {
            case .string(let s):
                if key.hasSuffix("-bin") { return "metadata key '\(key)' ends in '-bin' and needs a binary value" }
                if !s.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) {
                    return "metadata value of '\(key)' must be printable ASCII; use a '-bin' key for bytes"
                }
            case .binary:
                if !key.hasSuffix("-bin") { return "metadata key '\(key)' carries bytes and must end in '-bin'" }
            }
        }
        return nil
    }

    private static func printable(_ s: String) -> String {
        String(s.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}
