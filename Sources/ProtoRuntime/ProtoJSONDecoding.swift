/// A generated message that can be read from proto3 JSON.
public protocol ProtoJSONDecodable {
    /// Reads a message from its proto3 JSON mapping: an object whose keys are
    /// the fields' JSON names (lowerCamelCase) or their `.proto` names;
    /// `null` for a field (or the whole message) means its default. Unknown
    /// fields, values of the wrong type, out-of-range numbers, unknown enum
    /// names and invalid base64 are refused.
    init(json: ProtoJSON) throws(ProtoJSONDecodingError)
}

/// Why a JSON value is not a valid message: where (`path`, JSON field names
/// from the outermost message in, like `channel.capacityWeight` or
/// `reps[2].presence`; empty for the message itself) and what is wrong.
public struct ProtoJSONDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }

    /// The same error seen from the message that holds `key`.
    func nested(under key: String) -> ProtoJSONDecodingError {
        ProtoJSONDecodingError(path: path.isEmpty ? key : path.hasPrefix("[") ? key + path : key + "." + path, reason: reason)
    }
}

/// The conversions generated `init(json:)` code uses, one per field type,
/// each naming the field (`key`, as the JSON spelled it) when it refuses a
/// value. Follows the proto3 JSON mapping
/// (https://protobuf.dev/programming-guides/json/).
public enum ProtoJSONRead {
    /// The members of `json`, a message's object, matched to the message's
    /// fields: `fields` lists each field's JSON name and `.proto` name, and
    /// `field` is the index into it. Members whose value is `null` are left
    /// out (the field keeps its default). Refuses anything but an object
    /// (or `null`, which is the default message), unknown names, and a field
    /// given twice (under either name).
    public static func members(
        of json: ProtoJSON, message: String, fields: [(json: String, proto: String)]
    ) throws(ProtoJSONDecodingError) -> [(field: Int, key: String, value: ProtoJSON)] {
        let object: [(String, ProtoJSON)]
        switch json {
        case .null: return []
        case .object(let o): object = o
        default: throw ProtoJSONDecodingError(path: "", reason: "expected a JSON object for message \(message), got \(describe(json))")
        }
        var out: [(field: Int, key: String, value: ProtoJSON)] = []
        out.reserveCapacity(object.count)
        var seen: [Int: String] = [:]
        for (key, value) in object {
            guard let field = fields.firstIndex(where: { $0.json == key || $0.proto == key }) else {
                throw ProtoJSONDecodingError(path: "", reason: "unknown field '\(key)' in \(message)\(suggestion(for: key, in: fields))")
            }
            if let earlier = seen[field] {
                let twice = earlier == key ? "'\(key)'" : "'\(earlier)' and '\(key)'"
                throw ProtoJSONDecodingError(path: "", reason: "field '\(fields[field].json)' of \(message) is given twice (\(twice))")
            }
            seen[field] = key
            if case .null = value { continue }
            out.append((field, key, value))
        }
        return out
    }

    /// Notes that `key`, a member of oneof `oneof`, is set; refuses a second member.
    public static func oneof(_ set: inout String?, _ oneof: String, _ key: String) throws(ProtoJSONDecodingError) {
        if let other = set {
            throw ProtoJSONDecodingError(path: "", reason: "oneof '\(oneof)' has more than one field set ('\(other)' and '\(key)')")
        }
        set = key
    }

    // MARK: - Scalars

    public static func string(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> String {
        guard case .string(let s) = json else { throw mismatch(key, "a string", json) }
        // protobuf-c keeps strings NUL-terminated: a NUL would silently cut the value short.
        if s.utf8.contains(0) { throw ProtoJSONDecodingError(path: key, reason: "string contains a NUL character (\\u0000)") }
        return s
    }

    public static func bool(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> Bool {
        guard case .bool(let b) = json else { throw mismatch(key, "true or false", json) }
        return b
    }

    /// Standard or URL-safe base64, padded or not.
    public static func bytes(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> [UInt8] {
        guard case .string(let s) = json else { throw mismatch(key, "a base64 string", json) }
        guard let bytes = ProtoJSON.base64Decode(s) else {
            throw ProtoJSONDecodingError(path: key, reason: "\(quoted(s)) is not valid base64 (standard or URL-safe)")
        }
        return bytes
    }

    public static func int32(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> Int32 {
        let (negative, magnitude) = try integer(json, key, "int32")
        guard negative ? magnitude <= 1 << 31 : magnitude <= UInt64(Int32.max) else { throw outOfRange(key, json, "int32") }
        return negative ? Int32(truncatingIfNeeded: 0 &- magnitude) : Int32(magnitude)
    }

    public static func uint32(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> UInt32 {
        let (negative, magnitude) = try integer(json, key, "uint32")
        guard !negative || magnitude == 0, magnitude <= UInt64(UInt32.max) else { throw outOfRange(key, json, "uint32") }
        return UInt32(magnitude)
    }

    public static func int64(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> Int64 {
        let (negative, magnitude) = try integer(json, key, "int64")
        guard negative ? magnitude <= 1 << 63 : magnitude <= UInt64(Int64.max) else { throw outOfRange(key, json, "int64") }
        return negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
    }

    public static func uint64(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> UInt64 {
        let (negative, magnitude) = try integer(json, key, "uint64")
        guard !negative || magnitude == 0 else { throw outOfRange(key, json, "uint64") }
        return magnitude
    }

    /// A number, a numeric string, or "NaN", "Infinity", "-Infinity".
    public static func double(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> Double {
        switch json {
        case .number(let d): return d
        case .numberLiteral(let text):
            guard let d = Double(text), d.isFinite else { throw outOfRange(key, json, "double") }
            return d
        case .string(let s):
            switch s {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                guard isJSONNumber(s) else { throw mismatch(key, "a number (or a string holding one, NaN, Infinity or -Infinity)", json) }
                guard let d = Double(s), d.isFinite else { throw outOfRange(key, json, "double") }
                return d
            }
        default: throw mismatch(key, "a number", json)
        }
    }

    public static func float(_ json: ProtoJSON, _ key: String) throws(ProtoJSONDecodingError) -> Float {
        let d = try double(json, key)
        if d.isFinite, abs(d) > Double(Float.greatestFiniteMagnitude) { throw outOfRange(key, json, "float") }
        return Float(d)
    }

    /// An enum value by its `.proto` name, or by its number.
    public static func enumValue<E: ProtoEnum>(_ json: ProtoJSON, as type: E.Type, named enumName: String, _ key: String) throws(ProtoJSONDecodingError) -> E {
        switch json {
        case .string(let name):
            if let value = E.allCases.first(where: { $0.protoName == name }) { return value }
            let names = E.allCases.map(\.protoName).joined(separator: ", ")
            throw ProtoJSONDecodingError(path: key, reason: "unknown \(enumName) value \(quoted(name)); expected one of \(names)")
        case .number, .numberLiteral:
            let (negative, magnitude) = try integer(json, key, "enum")
            guard negative ? magnitude <= 1 << 31 : magnitude <= UInt64(Int32.max),
                  let value = E(rawValue: negative ? Int32(truncatingIfNeeded: 0 &- magnitude) : Int32(magnitude))
            else {
                let numbers = E.allCases.map { "\($0.rawValue) (\($0.protoName))" }.joined(separator: ", ")
                throw ProtoJSONDecodingError(path: key, reason: "unknown \(enumName) number \(json.rendered()); expected one of \(numbers)")
            }
            return value
        default:
            throw mismatch(key, "an enum name of \(enumName) (a string) or its number", json)
        }
    }

    // MARK: - Messages and repeated fields

    public static func message<M: ProtoJSONDecodable>(_ json: ProtoJSON, as type: M.Type, _ key: String) throws(ProtoJSONDecodingError) -> M {
        do throws(ProtoJSONDecodingError) {
            return try M(json: json)
        } catch {
            throw error.nested(under: key)
        }
    }

    /// A repeated field: an array whose elements `element` reads (`null` elements are refused).
    public static func repeated<T>(
        _ json: ProtoJSON, _ key: String, _ element: (ProtoJSON, String) throws(ProtoJSONDecodingError) -> T
    ) throws(ProtoJSONDecodingError) -> [T] {
        guard case .array(let items) = json else { throw mismatch(key, "an array (repeated field)", json) }
        var out: [T] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let itemKey = "\(key)[\(i)]"
            if case .null = item { throw ProtoJSONDecodingError(path: itemKey, reason: "null is not allowed in a repeated field") }
            out.append(try element(item, itemKey))
        }
        return out
    }

    public static func repeatedEnum<E: ProtoEnum>(_ json: ProtoJSON, as type: E.Type, named enumName: String, _ key: String) throws(ProtoJSONDecodingError) -> [E] {
        try repeated(json, key) { (item, itemKey) throws(ProtoJSONDecodingError) in try enumValue(item, as: E.self, named: enumName, itemKey) }
    }

    public static func repeatedMessage<M: ProtoJSONDecodable>(_ json: ProtoJSON, as type: M.Type, _ key: String) throws(ProtoJSONDecodingError) -> [M] {
        try repeated(json, key) { (item, itemKey) throws(ProtoJSONDecodingError) in try message(item, as: M.self, itemKey) }
    }

    // MARK: - Helpers

    /// An integral value: a JSON number, or a string holding one (proto3 JSON
    /// writes 64-bit integers as strings and accepts either for every integer
    /// type). Exponents and fractions are fine when the value is whole
    /// (`1e3`, `2.0`). Returns the sign and the magnitude.
    static func integer(_ json: ProtoJSON, _ key: String, _ type: String) throws(ProtoJSONDecodingError) -> (Bool, UInt64) {
        let text: String
        switch json {
        case .numberLiteral(let t): text = t
        case .string(let s):
            guard isJSONNumber(s) else { throw mismatch(key, "an \(type) (a number or a string holding one)", json) }
            text = s
        case .number(let d):
            guard d.isFinite, d.rounded() == d else { throw notInteger(key, json, type) }
            guard abs(d) < 18_446_744_073_709_551_616.0 else { throw outOfRange(key, json, type) }
            return (d < 0, UInt64(abs(d)))
        default:
            throw mismatch(key, "an \(type) (a number or a string holding one)", json)
        }
        switch exactInteger(text) {
        case .value(let negative, let magnitude): return (negative, magnitude)
        case .notInteger: throw notInteger(key, json, type)
        case .tooLarge: throw outOfRange(key, json, type)
        }
    }

    enum ExactInteger: Equatable { case value(Bool, UInt64), notInteger, tooLarge }

    /// The exact integer a JSON number (already checked by `isJSONNumber`) denotes.
    static func exactInteger(_ text: String) -> ExactInteger {
        var bytes = Substring(text).utf8[...]
        var negative = false
        if bytes.first == UInt8(ascii: "-") { negative = true; bytes = bytes.dropFirst() }
        var digits: [UInt8] = []
        var fractionDigits = 0
        var exponent = 0
        var exponentNegative = false
        var part = 0  // 0 integer, 1 fraction, 2 exponent
        for b in bytes {
            switch b {
            case UInt8(ascii: "."): part = 1
            case UInt8(ascii: "e"), UInt8(ascii: "E"): part = 2
            case UInt8(ascii: "+"): break
            case UInt8(ascii: "-"): exponentNegative = true
            default:
                let d = b - UInt8(ascii: "0")
                switch part {
                case 0: digits.append(d)
                case 1: digits.append(d); fractionDigits += 1
                default: exponent = min(exponent * 10 + Int(d), 100_000)
                }
            }
        }
        // Leading zeros carry no value (and `0.000…` may be long).
        while digits.count > 1, digits.first == 0 { digits.removeFirst() }
        var shift = (exponentNegative ? -exponent : exponent) - fractionDigits
        if digits.allSatisfy({ $0 == 0 }) { return .value(false, 0) }
        while shift < 0 {
            guard digits.last == 0 else { return .notInteger }
            digits.removeLast()
            shift += 1
        }
        if digits.count + shift > 20 { return .tooLarge }
        digits += [UInt8](repeating: 0, count: shift)
        var magnitude: UInt64 = 0
        for d in digits {
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return .tooLarge }
            magnitude = m2
        }
        return .value(negative, magnitude)
    }

    /// Whether `s` is exactly a JSON number (RFC 8259), nothing around it.
    static func isJSONNumber(_ s: String) -> Bool {
        guard case .numberLiteral = try? ProtoJSON.parse(s, maxDepth: 0), s.utf8.first.map({ $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) }) == true,
              let last = s.utf8.last, last >= 48 && last <= 57
        else { return false }
        return true
    }

    static func describe(_ json: ProtoJSON) -> String {
        let text = json.rendered()
        let short = text.count > 40 ? String(text.prefix(37)) + "..." : text
        switch json {
        case .null: return "null"
        case .bool: return short
        case .number, .numberLiteral: return "the number \(short)"
        case .string: return "the string \(short)"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    static func quoted(_ s: String) -> String { ProtoJSON.string(s).rendered() }

    static func mismatch(_ key: String, _ expected: String, _ json: ProtoJSON) -> ProtoJSONDecodingError {
        ProtoJSONDecodingError(path: key, reason: "expected \(expected), got \(describe(json))")
    }

    static func outOfRange(_ key: String, _ json: ProtoJSON, _ type: String) -> ProtoJSONDecodingError {
        ProtoJSONDecodingError(path: key, reason: "\(json.rendered()) is out of range for \(type)")
    }

    static func notInteger(_ key: String, _ json: ProtoJSON, _ type: String) -> ProtoJSONDecodingError {
        ProtoJSONDecodingError(path: key, reason: "\(json.rendered()) is not an integer (\(type))")
    }

    /// ", did you mean 'x'?" for a near miss among the field names.
    static func suggestion(for key: String, in fields: [(json: String, proto: String)]) -> String {
        let lower = key.lowercased().filter { $0 != "_" }
        if let match = fields.first(where: { $0.json.lowercased() == lower }) {
            return "; did you mean '\(match.json)'?"
        }
        let names = fields.map(\.json)
        return names.isEmpty ? " (it has no fields)" : "; its fields are \(names.joined(separator: ", "))"
    }
}

extension ProtoJSON {
    /// Decodes standard (`+/`) or URL-safe (`-_`) base64, with or without
    /// `=` padding; nil when `text` is not base64.
    public static func base64Decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var padding = 0
        for b in text.utf8 {
            if b == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            if padding > 0 { return nil }  // data after padding
            let v: UInt8
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = b - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = b - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = b - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): v = 63
            default: return nil
            }
            values.append(v)
        }
        let remainder = values.count % 4
        if remainder == 1 { return nil }
        if padding > 0, (values.count + padding) % 4 != 0 || padding > 2 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var i = 0
        while i + 4 <= values.count {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6 | UInt32(values[i + 3])
            out += [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            i += 4
        }
        if remainder == 2 {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12
            out.append(UInt8(n >> 16 & 0xFF))
        } else if remainder == 3 {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6
            out += [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF)]
        }
        return out
    }
}
