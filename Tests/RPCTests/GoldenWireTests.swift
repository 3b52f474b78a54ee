import Foundation
import ProtoRuntime
import RPC
import SessionAPI
import Testing

/// The envelope encoder checked against an independent decoder: `protoc
/// --decode` reads what `Wire` wrote, and its text must be exactly what the
/// proto schema says these envelopes are. A couple of envelopes are also
/// pinned as hex, so any change of the wire format fails loudly.
@Suite("Golden wire vectors")
struct GoldenWireTests {
    // MARK: - Pinned bytes (the example of docs/PROTOCOL.md section 10)

    @Test("an EmptyCall request, byte for byte")
    func emptyCallRequestHex() {
        var out: [UInt8] = []
        Wire.appendRequest(callID: 1, method: "/grpc.testing.TestService/EmptyCall", timeoutMicros: 0, metadata: [:], payload: [], to: &out)
        #expect(hex(out) == "00000029" + "0801" + "1225" + "0a23" + hex(Array("/grpc.testing.TestService/EmptyCall".utf8)))
        #expect(hex(out) == "00000029080112250a232f677270632e74657374696e672e54657374536572766963652f456d70747943616c6c")
    }

    @Test("an OK response with an empty message, byte for byte: the empty payload is present")
    func emptyResponseHex() {
        var out: [UInt8] = []
        Wire.appendResponse(callID: 1, code: .ok, message: "", payload: [], initialMetadata: [:], trailingMetadata: [:], to: &out)
        #expect(hex(out) == "00000006080122021a00")
        out = []
        Wire.appendResponse(callID: 1, code: .notFound, message: "", payload: nil, initialMetadata: [:], trailingMetadata: [:], to: &out)
        #expect(hex(out) == "0000000608012202" + "0805")
    }

    @Test("a GoAway, byte for byte")
    func goAwayHex() {
        var out: [UInt8] = []
        Wire.appendGoAway(lastCallID: 42, code: .unavailable, reason: "server is shutting down", to: &out)
        #expect(hex(out) == "0000001f" + "421d" + "082a" + "100e" + "1a17" + hex(Array("server is shutting down".utf8)))
    }

    // MARK: - Checked by protoc

    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let frame: [UInt8]
        let text: String
        var testDescription: String { name }
    }

    static let vectors: [Vector] = [
        Vector(
            name: "request with method, timeout, metadata and payload",
            frame: frame {
                var md = RPCMetadata()
                md.add("authorization", "Bearer t0ken")
                md.add("x-trace-bin", binary: [0x00, 0xFF, 0x0A])
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = 3
                Wire.appendRequest(
                    callID: 7, method: "/grpc.testing.TestService/UnaryCall", timeoutMicros: 1_500_000, metadata: md,
                    payload: request.serializedBytes(), to: &$0)
            },
            text: #"""
                call_id: 7
                request {
                  method: "/grpc.testing.TestService/UnaryCall"
                  timeout_micros: 1500000
                  metadata {
                    key: "authorization"
                    value: "Bearer t0ken"
                  }
                  metadata {
                    key: "x-trace-bin"
                    value: "\000\377\n"
                  }
                  payload: "\020\003"
                }

                """#),
        Vector(
            name: "OK response with payload and metadata",
            frame: frame {
                var response = GrpcTesting.SimpleResponse()
                var payload = GrpcTesting.Payload()
                payload.body = [1, 2, 3]
                response.payload = payload
                var initial = RPCMetadata()
                initial.add("x-grpc-test-echo-initial", "v")
                var trailing = RPCMetadata()
                trailing.add("x-grpc-test-echo-trailing-bin", binary: [0xAB])
                Wire.appendResponse(
                    callID: 7, code: .ok, message: "", payload: response.serializedBytes(),
                    initialMetadata: initial, trailingMetadata: trailing, to: &$0)
            },
            text: #"""
                call_id: 7
                response {
                  payload: "\n\005\022\003\001\002\003"
                  initial_metadata {
                    key: "x-grpc-test-echo-initial"
                    value: "v"
                  }
                  trailing_metadata {
                    key: "x-grpc-test-echo-trailing-bin"
                    value: "\253"
                  }
                }

                """#),
        Vector(
            name: "error response with a status and a UTF-8 message",
            frame: frame {
                Wire.appendResponse(
                    callID: 300, code: .notFound, message: "session s-1 not found ☺", payload: nil,
                    initialMetadata: [:], trailingMetadata: [:], to: &$0)
            },
            text: #"""
                call_id: 300
                response {
                  status_code: 5
                  status_message: "session s-1 not found \342\230\272"
                }

                """#),
        Vector(
            name: "OK response with an empty message",
            frame: frame {
                Wire.appendResponse(callID: 1, code: .ok, message: "", payload: [], initialMetadata: [:], trailingMetadata: [:], to: &$0)
            },
            text: """
                call_id: 1
                response {
                  payload: ""
                }

                """),
        Vector(
            name: "stream message with initial metadata",
            frame: frame {
                Wire.appendStreamMessage(callID: 4, payload: [0x0A, 0x00], initialMetadata: ["a": .string("b")], to: &$0)
            },
            text: #"""
                call_id: 4
                stream_message {
                  payload: "\n\000"
                  initial_metadata {
                    key: "a"
                    value: "b"
                  }
                }

                """#),
        Vector(
            name: "cancel",
            frame: frame { Wire.appendCancel(callID: 3, reason: "cancelled by the client", to: &$0) },
            text: """
                call_id: 3
                cancel {
                  reason: "cancelled by the client"
                }

                """),
        Vector(
            name: "go-away",
            frame: frame { Wire.appendGoAway(lastCallID: 42, code: .unavailable, reason: "server is shutting down", to: &$0) },
            text: """
                go_away {
                  last_call_id: 42
                  error_code: 14
                  reason: "server is shutting down"
                }

                """),
        Vector(
            name: "ping",
            frame: frame { Wire.appendPing(opaque: 0x0123_4567_89AB_CDEF, to: &$0) },
            text: """
                ping {
                  opaque: 81985529216486895
                }

                """),
        Vector(
            name: "ping with opaque 0 (an empty but present message)",
            frame: frame { Wire.appendPing(opaque: 0, to: &$0) },
            text: """
                ping {
                }

                """),
        Vector(
            name: "pong",
            frame: frame { Wire.appendPong(opaque: .max, to: &$0) },
            text: """
                pong {
                  opaque: 18446744073709551615
                }

                """),
    ]

    @Test("protoc decodes what Wire encodes", arguments: vectors)
    func protocAgrees(vector: Vector) async throws {
        let body = try #require(Self.stripLength(vector.frame))
        let text = try await Self.protocDecode(body)
        #expect(text == vector.text)
    }

    @Test("the generated envelope type encodes the same bytes and decodes Wire's", arguments: vectors)
    func generatedTypesAgree(vector: Vector) throws {
        let body = try #require(Self.stripLength(vector.frame))
        let decoded = try SessionrpcV1.Envelope(serializedBytes: body)
        #expect(decoded.serializedBytes() == body)
    }

    @Test("Wire decodes what it encodes")
    func wireRoundTrip() throws {
        var md = RPCMetadata()
        md.add("authorization", "Bearer t0ken")
        md.add("x-trace-bin", binary: [0x00, 0xFF])
        var out: [UInt8] = []
        Wire.appendRequest(callID: 9, method: "/a.B/C", timeoutMicros: 77, metadata: md, payload: [1, 2, 3], to: &out)
        let body = try #require(Self.stripLength(out))
        try body.withUnsafeBytes { raw in
            try Wire.decode(raw) { envelope in
                guard case let .request(callID, method, timeout, metadata, payload) = envelope else {
                    Issue.record("decoded \(envelope)")
                    return
                }
                #expect(callID == 9)
                #expect(method == "/a.B/C")
                #expect(timeout == 77)
                #expect(metadata.map(\.key) == ["authorization", "x-trace-bin"])
                #expect(metadata.map(\.value) == [Array("Bearer t0ken".utf8), [0x00, 0xFF]])
                #expect(Array(payload) == [1, 2, 3])
            }
        }

        out = []
        Wire.appendResponse(callID: 2, code: .ok, message: "", payload: [], initialMetadata: [:], trailingMetadata: [:], to: &out)
        Wire.appendResponse(callID: 3, code: .aborted, message: "m", payload: nil, initialMetadata: [:], trailingMetadata: [:], to: &out)
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.append(out)
        var payloads: [[UInt8]?] = []
        try decoder.forEachFrame { frame in
            try Wire.decode(frame) { envelope in
                guard case let .response(_, _, _, payload, _, _) = envelope else { return }
                payloads.append(payload.map { Array($0) })
            }
        }
        // An empty message and no message differ on the wire.
        #expect(payloads == [[], nil])
    }

    // MARK: - Helpers

    static func frame(_ build: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        build(&out)
        return out
    }

    /// The envelope bytes after checking the 4-byte length.
    static func stripLength(_ frame: [UInt8]) -> [UInt8]? {
        guard frame.count >= 4 else { return nil }
        let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        guard length == frame.count - 4 else { return nil }
        return Array(frame[4...])
    }

    struct ProtocFailed: Error, CustomStringConvertible {
        let description: String
    }

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func protocPath() -> String? {
        let candidates = ["/usr/bin/protoc"] + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/protoc" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `protoc --decode=sessionrpc.v1.Envelope` on `bytes`; returns its text.
    static func protocDecode(_ bytes: [UInt8]) async throws -> String {
        guard let protoc = protocPath() else { throw ProtocFailed(description: "protoc is not installed (apt-get install protobuf-compiler)") }
        let protos = packageRoot.appendingPathComponent("Protos").path
        return try await offload {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: protoc)
            process.arguments = ["--decode=sessionrpc.v1.Envelope", "-I", protos, protos + "/rpc_envelope.proto"]
            let stdin = Pipe()
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            stdin.fileHandleForWriting.write(Data(bytes))
            try stdin.fileHandleForWriting.close()
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw ProtocFailed(description: "protoc failed (\(process.terminationStatus)): \(String(decoding: err, as: UTF8.self))")
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { b in String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }.joined()
}
