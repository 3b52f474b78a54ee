import RPC
import Testing

@Suite("Preface")
struct PrefaceTests {
    @Test("the preface is SESSRPC and version 1")
    func bytes() {
        #expect(Preface.bytes == [0x53, 0x45, 0x53, 0x53, 0x52, 0x50, 0x43, 0x01])
        #expect(Preface.count == 8)
    }

    @Test("our own preface is accepted")
    func accepted() {
        #expect(Preface.judge(Preface.bytes) == .accepted)
    }

    @Test("our magic with another version is told apart")
    func otherVersion() {
        #expect(Preface.judge(Array("SESSRPC".utf8) + [2]) == .unsupportedVersion(2))
        #expect(Preface.judge(Array("SESSRPC".utf8) + [0]) == .unsupportedVersion(0))
    }

    @Test("HTTP request lines are recognised", arguments: ["GET / HTTP/1.1", "POST /x", "HEAD / H", "PRI * HTTP/2.0", "OPTIONS *", "PUT /abc"])
    func http(line: String) {
        #expect(Preface.judge(Array(line.utf8).prefix(8)) == .http)
    }

    @Test("anything else is garbage", arguments: [[UInt8](repeating: 0, count: 8), Array("SSH-2.0-".utf8), [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01], Array("sessrpc\u{1}".utf8)])
    func garbage(bytes: [UInt8]) {
        #expect(Preface.judge(bytes) == .garbage)
    }

    @Test("the HTTP refusal is a complete 400 response whose Content-Length is right")
    func httpRefusal() throws {
        let text = String(decoding: Preface.httpRefusal, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        let parts = text.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)
        try #require(parts.count == 2)
        let length = parts[0].split(separator: "\r\n").first { $0.hasPrefix("Content-Length: ") }.map { Int($0.dropFirst(16)) }
        #expect(length == parts[1].utf8.count)
    }
}
