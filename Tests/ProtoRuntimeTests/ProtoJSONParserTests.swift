import ProtoRuntime
import Testing

@Suite("ProtoJSON.parse")
struct ProtoJSONParserTests {
    private func parse(_ text: String) throws -> ProtoJSON { try ProtoJSON.parse(text) }

    private func syntaxError(_ text: String) -> ProtoJSONSyntaxError? {
        do {
            _ = try ProtoJSON.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test("scalars, arrays and objects, with whitespace anywhere between tokens")
    func values() throws {
        #expect(try parse("null") == .null)
        #expect(try parse(" true ") == .bool(true))
        #expect(try parse("\tfalse\r\n") == .bool(false))
        #expect(try parse("\"hi\"") == .string("hi"))
        #expect(try parse("[]") == .array([]))
        #expect(try parse("{}") == .object([]))
        #expect(try parse(" [ 1 , \"a\" , [ ] , { } , null ] ") == .array([.numberLiteral("1"), .string("a"), .array([]), .object([]), .null]))
        let object = try parse(#"{"b": 1, "a": {"c": [true]}, "b": 2}"#)
        guard case .object(let members) = object else { Issue.record("not an object: \(object)"); return }
        // Order and duplicates are kept: the message decoder decides about duplicates.
        #expect(members.map(\.0) == ["b", "a", "b"])
        #expect(object.rendered() == #"{"b":1,"a":{"c":[true]},"b":2}"#)
    }

    @Test("numbers keep their literal text, so int64 values keep every digit")
    func numbers() throws {
        for text in ["0", "-0", "7", "-12", "9223372036854775807", "-9223372036854775808", "18446744073709551615",
                     "9007199254740993", "1.5", "-0.25", "1e3", "1E+3", "2.5e-7", "123456789012345678901234567890"] {
            #expect(try parse(text) == .numberLiteral(text), "\(text)")
            #expect(try parse(text).rendered() == text)
        }
    }

    @Test("invalid numbers", arguments: ["01", "-", "-01", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.2.3", "NaN", "Infinity", "-Infinity", "1_000", "12a"])
    func invalidNumbers(text: String) {
        #expect(syntaxError(text) != nil, "\(text) was accepted")
    }

    @Test("escapes, including surrogate pairs, decode to the characters they stand for")
    func escapes() throws {
        #expect(try parse(#""a\"b\\c\/d\be\ff\ng\rh\ti""#) == .string("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti"))
        #expect(try parse(#""\u00e9\u20AC""#) == .string("é€"))
        #expect(try parse(#""\ud83d\ude00!""#) == .string("😀!"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
        // Raw UTF-8 passes through.
        #expect(try parse("\"日本 😀\"") == .string("日本 😀"))
        // And rendering then parsing gives the same string back.
        let tricky = "quote\" backslash\\ nl\n tab\t ctrl\u{1} é 😀"
        #expect(try parse(ProtoJSON.string(tricky).rendered()) == .string(tricky))
    }

    @Test("bad strings: lone surrogates, bad escapes, raw control characters, no end")
    func badStrings() {
        let cases: [(String, String)] = [
            (#""\ud83d""#, "high surrogate"),
            (#""\ud83dx""#, "high surrogate"),
            (#""\ud83d\u0041""#, "not a low surrogate"),
            (#""\ude00""#, "low surrogate"),
            (#""\x41""#, "invalid escape"),
            (#""\u12G4""#, "four hex digits"),
            (#""\u12""#, "four hex digits"),
            ("\"a\nb\"", "control character"),
            ("\"a\u{1}\"", "control character"),
            (#""abc"#, "unterminated"),
            (#""abc\"#, "unterminated"),
            ("'a'", "unexpected"),
        ]
        for (text, fragment) in cases {
            let error = syntaxError(text)
            #expect(error?.reason.contains(fragment) == true, "\(text): \(String(describing: error))")
        }
    }

    @Test("UTF-8 is checked when parsing bytes")
    func invalidUTF8() throws {
        #expect(throws: ProtoJSONSyntaxError.self) { try ProtoJSON.parse(utf8: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: ProtoJSONSyntaxError.self) { try ProtoJSON.parse(utf8: [0x22, 0xED, 0xA0, 0x80, 0x22]) }
        #expect(try ProtoJSON.parse(utf8: [0x22, 0xC3, 0xA9, 0x22]) == .string("é"))
    }

    @Test("structural errors name what was expected and the byte offset")
    func structuralErrors() {
        let cases: [(String, Int, String)] = [
            ("", 0, "empty input"),
            ("   ", 3, "only whitespace"),
            ("{", 1, "expected a member name"),
            ("{\"a\"}", 4, "expected ':'"),
            ("{\"a\":1,}", 7, "expected a member name"),
            ("[1,]", 3, "expected a value"),
            ("[1 2]", 3, "expected ',' or ']'"),
            ("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"),
            ("{a:1}", 1, "double quotes"),
            ("tru", 0, "did you mean true"),
            ("nul", 0, "did you mean null"),
            ("truex", 4, "after true"),
            ("1 2", 2, "after the JSON value"),
            ("{} x", 3, "after the JSON value"),
            ("[1] // comment", 4, "after the JSON value"),
            ("\u{FEFF}{}", 0, "unexpected"),
        ]
        for (text, offset, fragment) in cases {
            let error = syntaxError(text)
            #expect(error?.offset == offset, "\(text): \(String(describing: error))")
            #expect(error?.reason.contains(fragment) == true, "\(text): \(String(describing: error))")
            #expect(error?.description.hasPrefix("invalid JSON at byte \(offset): ") == true)
        }
    }

    @Test("nesting deeper than the limit is refused, at the limit it is fine")
    func depthLimit() throws {
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try parse(deep).rendered() == deep)
        let tooDeep = "[" + deep + "]"
        let error = syntaxError(tooDeep)
        #expect(error?.offset == 64)
        #expect(error?.reason.contains("deeper than 64") == true, "\(String(describing: error))")
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(syntaxError(objects)?.reason.contains("deeper than 64") == true)
        #expect(throws: ProtoJSONSyntaxError.self) { try ProtoJSON.parse("[[1]]", maxDepth: 1) }
        #expect(try ProtoJSON.parse("[1]", maxDepth: 1) == .array([.numberLiteral("1")]))
        // A pathological input fails cleanly instead of exhausting the stack.
        #expect(syntaxError(String(repeating: "[", count: 100_000)) != nil)
    }

    @Test("rendering: non-finite doubles become proto3 JSON strings")
    func nonFinite() {
        #expect(ProtoJSON.number(.nan).rendered() == #""NaN""#)
        #expect(ProtoJSON.number(.infinity).rendered() == #""Infinity""#)
        #expect(ProtoJSON.number(-.infinity).rendered() == #""-Infinity""#)
        #expect(ProtoJSON.number(1.5).rendered() == "1.5")
    }
}
