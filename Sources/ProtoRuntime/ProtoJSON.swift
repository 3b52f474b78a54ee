/// A JSON value in proto3's JSON mapping (lowerCamelCase keys, enum names,
/// 64-bit integers as strings, bytes as base64), for `--json` output and,
/// through ``parse(_:maxDepth:)``, for requests written as JSON.
public indirect enum ProtoJSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    /// A number exactly as written in parsed JSON text (RFC 8259 grammar), so
    /// that a 64-bit integer loses no digits on its way to a field. Rendered
    /// as written.
    case numberLiteral(String)
    case string(String)
    case array([ProtoJSON])
    case object([(String, ProtoJSON)])

    public init(_ value: Bool) { self = .bool(value) }
    public init(_ value: String) { self = .string(value) }
    public init(_ value: Int32) { self = .number(Double(value)) }
    public init(_ value: UInt32) { self = .number(Double(value)) }
    public init(_ value: Double) { self = .number(value) }
    public init(_ value: Float) { self = .number(Double(value)) }
    public init(_ value: ProtoJSON) { self = value }
    public init<M: ProtoJSONEncodable>(_ message: M) { self = message.jsonObject() }

    public static func == (lhs: ProtoJSON, rhs: ProtoJSON) -> Bool { lhs.rendered() == rhs.rendered() }
    public func hash(into hasher: inout Hasher) { hasher.combine(rendered()) }

    /// Standard base64 of `bytes`.
    public static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = Int(bytes[i]), b1 = i + 1 < bytes.count ? Int(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? Int(bytes[i + 2]) : 0
            out.append(table[b0 >> 2])
            out.append(table[((b0 & 3) << 4) | (b1 >> 4)])
            out.append(i + 1 < bytes.count ? table[((b1 & 15) << 2) | (b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? table[b2 & 63] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Compact (`pretty == false`) or indented JSON text.
    public func rendered(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, depth: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, depth: Int) {
        let pad = pretty ? "\n" + String(repeating: "  ", count: depth + 1) : ""
        let end = pretty ? "\n" + String(repeating: "  ", count: depth) : ""
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 {
                out += String(Int64(n))
            } else if n.isFinite {
                out += "\(n)"
            } else {
                // JSON has no NaN or infinities; proto3 JSON writes them as strings.
                ProtoJSON.quote(n.isNaN ? "NaN" : n < 0 ? "-Infinity" : "Infinity", into: &out)
            }
        case .numberLiteral(let text): out += text
        case .string(let s): ProtoJSON.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                out += pad
                item.write(to: &out, pretty: pretty, depth: depth + 1)
            }
            out += end + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                out += pad
                ProtoJSON.quote(key, into: &out)
                out += pretty ? ": " : ":"
                value.write(to: &out, pretty: pretty, depth: depth + 1)
            }
            out += end + "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// A generated message that renders itself as proto3 JSON.
public protocol ProtoJSONEncodable {
    func jsonObject() -> ProtoJSON
}
