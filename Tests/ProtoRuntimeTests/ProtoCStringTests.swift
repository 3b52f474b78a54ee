import Testing
import ProtoRuntime

/// `ProtoC.string`: a protobuf-c `string` field becomes a Swift `String` only when it is valid UTF-8.
@Suite("protobuf-c string fields")
struct ProtoCStringTests {
    /// Calls `ProtoC.string` on `bytes` as protobuf-c leaves them (NUL-terminated), behind 16
    /// bytes that are not the unpack allocator's header.
    private func decode(_ bytes: [UInt8]) throws(ProtoDecodingError) -> String {
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 16 + bytes.count + 1)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0, count: 16 + bytes.count + 1)
        for (i, b) in bytes.enumerated() { buffer[16 + i] = b }
        let text = UnsafeMutableRawPointer(buffer + 16).assumingMemoryBound(to: CChar.self)
        return try ProtoC.string(text, field: "f")
    }

    @Test("valid UTF-8 comes back as it was", arguments: ["", "ses_019a2b3c4d5e8f7e6d5c4b3a2918", "héllo", "日本語", "emoji 🎧 ok", "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"])
    func valid(_ text: String) throws {
        #expect(try decode(Array(text.utf8)) == text)
    }

    @Test("invalid UTF-8 is refused, even where repairing it would keep the length", arguments: [
        [0xC3, 0x28],                   // a lead byte without its continuation
        [0x80],                         // a lone continuation byte
        [0xE2, 0x82],                   // truncated at the end
        [0xC0, 0xAF],                   // overlong encoding of "/"
        [0xED, 0xA0, 0x80],             // a UTF-16 surrogate (U+D800): 3 bytes, repaired to 3 others
        [0xF4, 0x90, 0x80, 0x80],       // beyond U+10FFFF
        [0xFF, 0x61, 0x62],             // never valid in UTF-8
        [0x61, 0xEF, 0xBF, 0xBD, 0xFE], // a real U+FFFD, then an invalid byte
    ] as [[UInt8]])
    func invalid(_ bytes: [UInt8]) {
        #expect(throws: ProtoDecodingError.self) { try decode(bytes) }
    }
}
