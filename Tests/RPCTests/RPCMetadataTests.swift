import RPC
import Testing

@Suite("RPCMetadata and status codes")
struct RPCMetadataTests {
    @Test("valid keys", arguments: ["a", "x-grpc-test-echo-initial", "authorization", "key_1.2-3", "trace-bin", String(repeating: "k", count: 255)])
    func validKeys(key: String) {
        #expect(RPCMetadata.keyProblem(key) == nil)
    }

    @Test("invalid keys", arguments: ["", "Bad Key", "Upper", "grpc-x", "grpc-", "ключ", "a:b", String(repeating: "k", count: 256)])
    func invalidKeys(key: String) {
        #expect(RPCMetadata.keyProblem(key) != nil)
    }

    @Test("a client refuses metadata that the server would refuse")
    func clientSideProblems() {
        #expect(RPCMetadata(dictionaryLiteral: ("x-ok", .string("fine"))).problem() == nil)
        #expect(RPCMetadata(dictionaryLiteral: ("x-ok-bin", .binary([0, 255]))).problem() == nil)
        #expect(RPCMetadata(dictionaryLiteral: ("x-text", .string("é"))).problem() != nil)
        #expect(RPCMetadata(dictionaryLiteral: ("x-text", .binary([1]))).problem() != nil)
        #expect(RPCMetadata(dictionaryLiteral: ("x-bytes-bin", .string("text"))).problem() != nil)
        #expect(RPCMetadata(dictionaryLiteral: ("Bad Key", .string("v"))).problem() != nil)
    }

    @Test("decoding wire entries keeps order and repeated keys, and types -bin values as bytes")
    func decodeKeepsOrder() throws {
        let md = try RPCMetadata.decode([("a", Array("1".utf8)), ("b-bin", [0, 1]), ("a", Array("2".utf8))])
        #expect(md.values("a") == [.string("1"), .string("2")])
        #expect(md.values("b-bin") == [.binary([0, 1])])
        #expect(md["a"] == "1")
        #expect(md.wireSize == 1 + 1 + 5 + 2 + 1 + 1)
    }

    @Test("decoding refuses a non-printable value for a text key", arguments: [[UInt8]([0xC3, 0xA9]), [0x07], [0x7F], [0x00]])
    func decodeRefusesNonPrintable(value: [UInt8]) {
        #expect(throws: RPCError.self) { try RPCMetadata.decode([("x-text", value)]) }
    }

    @Test("status codes are gRPC's, 0...16, and anything above is UNKNOWN")
    func statusCodes() {
        #expect(RPCStatusCode.allCases.map(\.rawValue) == Array(0...16))
        #expect(RPCStatusCode.deadlineExceeded.name == "DEADLINE_EXCEEDED")
        #expect(RPCStatusCode.unauthenticated.rawValue == 16)
        #expect(RPCStatusCode(wireValue: 17) == .unknown)
        #expect(RPCStatusCode(wireValue: .max) == .unknown)
        #expect(RPCError(.notFound, "x").description == "NOT_FOUND: x")
    }
}
