/// Why text is not JSON: what was wrong and at which byte (0-based, in the
/// UTF-8 text).
public struct ProtoJSONSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension ProtoJSON {
    /// How deeply arrays and objects may nest in ``parse(_:maxDepth:)`` by default.
    public static let defaultMaxDepth = 64

    /// Parses JSON text strictly by RFC 8259: one value, optionally
    /// surrounded by whitespace; no comments, trailing commas, single quotes,
    /// leading zeros, NaN or unescaped control characters; `\u` escapes must
    /// pair their surrogates. Numbers stay as written (``numberLiteral(_:)``)
    /// so that 64-bit integers keep every digit. Object members keep their
    /// order, duplicates included (a message decoder refuses those).
    ///
    /// The caller bounds the size; `maxDepth` bounds the nesting (and so the
    /// recursion).
    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(ProtoJSONSyntaxError) -> ProtoJSON {
        try parse(utf8: Array(text.utf8), maxDepth: maxDepth)
    }

    /// Parses JSON from UTF-8 bytes (see ``parse(_:maxDepth:)``); strings
    /// that are not valid UTF-8 are refused.
    public static func parse(utf8 bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(ProtoJSONSyntaxError) -> ProtoJSON {
        var parser = ProtoJSONParser(bytes: bytes, maxDepth: maxDepth)
        return try parser.parseDocument()
    }
}

/// A recursive-descent parser over UTF-8 bytes.
struct ProtoJSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(ProtoJSONSyntaxError) -> ProtoJSON {
        skipWhitespace()
        if index == bytes.count {
            throw ProtoJSONSyntaxError(offset: index, reason: bytes.isEmpty ? "empty input; expected a JSON value" : "only whitespace; expected a JSON value")
        }
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count {
            throw error("unexpected \(describe(bytes[index])) after the JSON value")
        }
        return value
    }

    // MARK: - Values

    private mutating func parseValue() throws(ProtoJSONSyntaxError) -> ProtoJSON {
        guard index < bytes.count else { throw error("unexpected end of input; expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .numberLiteral(try parseNumber())
        case let b: throw error("unexpected \(describe(b)); expected a value")
        }
    }

    private mutating func enter() throws(ProtoJSONSyntaxError) {
        depth += 1
        if depth > maxDepth { throw error("arrays and objects nest deeper than \(maxDepth) levels") }
    }

    private mutating func parseObject() throws(ProtoJSONSyntaxError) -> ProtoJSON {
        try enter()
        index += 1  // {
        var members: [(String, ProtoJSON)] = []
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object; expected a member name") }
            guard bytes[index] == UInt8(ascii: "\"") else {
                throw error("unexpected \(describe(bytes[index])) in an object; expected a member name in double quotes")
            }
            let key = try parseString()
            skipWhitespace()
            guard peek(UInt8(ascii: ":")) else { throw error(atEnd: "after member name \"\(key)\"; expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            members.append((key, value))
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
                continue
            }
            if peek(UInt8(ascii: "}")) {
                index += 1
                depth -= 1
                return .object(members)
            }
            throw error(atEnd: "in an object; expected ',' or '}'")
        }
    }

    private mutating func parseArray() throws(ProtoJSONSyntaxError) -> ProtoJSON {
        try enter()
        index += 1  // [
        var items: [ProtoJSON] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            index += 1
            depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
                continue
            }
            if peek(UInt8(ascii: "]")) {
                index += 1
                depth -= 1
                return .array(items)
            }
            throw error(atEnd: "in an array; expected ',' or ']'")
        }
    }

    private mutating func expectWord(_ word: StaticString) throws(ProtoJSONSyntaxError) {
        let start = index
        let utf8 = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for b in utf8 {
            guard index < bytes.count, bytes[index] == b else {
                index = start
                throw error("unexpected \(describe(bytes[start])); expected a value (did you mean \(word)?)")
            }
            index += 1
        }
        // `truex` and `nullnull` are not words of JSON.
        if index < bytes.count, isLetterOrDigit(bytes[index]) {
            throw error("unexpected \(describe(bytes[index])) after \(word)")
        }
    }

    // MARK: - Strings

    private mutating func parseString() throws(ProtoJSONSyntaxError) -> String {
        let start = index
        index += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard index < bytes.count else {
                throw ProtoJSONSyntaxError(offset: start, reason: "unterminated string")
            }
            let b = bytes[index]
            switch b {
            case UInt8(ascii: "\""):
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw ProtoJSONSyntaxError(offset: start, reason: "string is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                try parseEscape(into: &out)
            case 0..<0x20:
                throw error("unescaped control character U+\(hex4(UInt32(b))) in a string (write it as \\u\(hex4(UInt32(b))))")
            default:
                out.append(b)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(ProtoJSONSyntaxError) {
        let start = index
        index += 1  // backslash
        guard index < bytes.count else { throw ProtoJSONSyntaxError(offset: start, reason: "unterminated escape") }
        let c = bytes[index]
        index += 1
        switch c {
        case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try parseHex4(escapeAt: start)
            var scalar: UInt32 = unit
            if (0xD800...0xDBFF).contains(unit) {
                // A high surrogate must be followed by an escaped low one.
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    throw ProtoJSONSyntaxError(offset: start, reason: "\\u\(hex4(unit)) is a high surrogate without a low surrogate after it")
                }
                let lowStart = index
                index += 2
                let low = try parseHex4(escapeAt: lowStart)
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw ProtoJSONSyntaxError(offset: lowStart, reason: "\\u\(hex4(unit)) is a high surrogate followed by \\u\(hex4(low)), not a low surrogate")
                }
                scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw ProtoJSONSyntaxError(offset: start, reason: "\\u\(hex4(unit)) is a low surrogate without a high surrogate before it")
            }
            appendUTF8(scalar, to: &out)
        default:
            throw ProtoJSONSyntaxError(offset: start, reason: "invalid escape \\\(printable(c)) (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
        }
    }

    private mutating func parseHex4(escapeAt start: Int) throws(ProtoJSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = hexValue(bytes[index]) else {
                throw ProtoJSONSyntaxError(offset: start, reason: "\\u must be followed by four hex digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    // MARK: - Numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
    private mutating func parseNumber() throws(ProtoJSONSyntaxError) -> String {
        let start = index
        if peek(UInt8(ascii: "-")) { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else {
            throw error(atEnd: "in a number; expected a digit after '-'")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, isDigit(bytes[index]) {
                throw ProtoJSONSyntaxError(offset: start, reason: "number with a leading zero")
            }
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if peek(UInt8(ascii: ".")) {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error(atEnd: "in a number; expected a digit after '.'") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            index += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error(atEnd: "in a number; expected a digit in the exponent") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, isLetterOrDigit(bytes[index]) || bytes[index] == UInt8(ascii: ".") {
            throw error("unexpected \(describe(bytes[index])) in a number")
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    // MARK: - Helpers

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek(_ b: UInt8) -> Bool { index < bytes.count && bytes[index] == b }

    private func error(_ reason: String) -> ProtoJSONSyntaxError {
        ProtoJSONSyntaxError(offset: index, reason: reason)
    }

    /// "unexpected X <context>", or "unexpected end of input <context>".
    private func error(atEnd context: String) -> ProtoJSONSyntaxError {
        error("unexpected \(index < bytes.count ? describe(bytes[index]) : "end of input") \(context)")
    }

    private func describe(_ b: UInt8) -> String {
        (0x21...0x7E).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : b == 0x20 ? "space" : "byte 0x\(String(b, radix: 16, uppercase: true))"
    }

    private func printable(_ b: UInt8) -> String {
        (0x21...0x7E).contains(b) ? String(Character(Unicode.Scalar(b))) : "(byte 0x\(String(b, radix: 16, uppercase: true)))"
    }
}

private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

private func isLetterOrDigit(_ b: UInt8) -> Bool {
    isDigit(b) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z")) || b == UInt8(ascii: "_") || b >= 0x80
}

private func hexValue(_ b: UInt8) -> UInt32? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
    default: nil
    }
}

private func hex4(_ v: UInt32) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

private func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
    switch scalar {
    case 0..<0x80:
        out.append(UInt8(scalar))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | scalar >> 6))
        out.append(UInt8(0x80 | scalar & 0x3F))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | scalar >> 12))
        out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
        out.append(UInt8(0x80 | scalar & 0x3F))
    default:
        out.append(UInt8(0xF0 | scalar >> 18))
        out.append(UInt8(0x80 | scalar >> 12 & 0x3F))
        out.append(UInt8(0x80 | scalar >> 6 & 0x3F))
        out.append(UInt8(0x80 | scalar & 0x3F))
    }
}
