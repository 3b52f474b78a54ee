import RPC
import SessionAPI
import Testing

extension Loopback {
    /// Bad input over a real socket: the server refuses it as PROTOCOL.md says
    /// and keeps serving everyone else (every case ends by checking that a fresh,
    /// well-behaved client is served).
    @Suite("Bad input over a raw socket")
    struct BadInputTests {
        // MARK: - Preface

        @Test("garbage instead of the preface: closed without an answer")
        func garbagePreface() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await raw.send([0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00])  // a TLS ClientHello's start
                #expect(try await raw.receiveUntilClosed() == [])
                await server.expectServesNewClient()
            }
        }

        @Test("an HTTP GET: HTTP/1.1 400, then closed")
        func httpGet() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await raw.send(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
                let answer = try await raw.receiveUntilClosed()
                #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
                #expect(answer == Preface.httpRefusal)
                await server.expectServesNewClient()
            }
        }

        @Test(
            "an HTTP request whose first bytes arrive alone still gets HTTP 400"
        )
        func httpGetInPieces() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await raw.send(Array("GE".utf8))
                try await Task.sleep(nanoseconds: 50_000_000)
                try await raw.send(Array("T / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
                let answer = try await raw.receiveUntilClosed()
                #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 400 "))
                await server.expectServesNewClient()
            }
        }

        @Test("our magic with another version: the server's preface, GoAway UNIMPLEMENTED, then closed")
        func wrongVersion() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                try await raw.send(Array("SESSRPC".utf8) + [2])
                #expect(try await raw.receive(exactly: 8) == Preface.bytes)
                let goAway = try #require(try await raw.receiveEnvelope().goAway)
                #expect(goAway.errorCode == RPCStatusCode.unimplemented.rawValue)
                #expect(goAway.reason.contains("version 2"))
                #expect(try await raw.receiveUntilClosed() == [])
                await server.expectServesNewClient()
            }
        }

        @Test("a preface that never completes is closed after the frame timeout")
        func prefaceTimeout() async throws {
            try await withTestServer({ $0.frameTimeoutSeconds = 0.2 }) { server in
                let elapsed = try await measure { () async throws in
                    let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                    try await raw.send(Array("SESS".utf8))
                    #expect(try await raw.receiveUntilClosed(timeout: 3) == [])
                }
                #expect(elapsed > 0.15)
                await server.expectServesNewClient()
            }
        }

        // MARK: - Frames

        @Test("a frame length over the limit: GoAway RESOURCE_EXHAUSTED from the header alone, then closed")
        func frameOverLimit() async throws {
            try await withTestServer({ $0.maxFrameBytes = 1024 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send([0x00, 0x00, 0x04, 0x01])  // 1025 bytes announced, none sent
                let goAway = try #require(try await raw.receiveEnvelope().goAway)
                #expect(goAway.errorCode == RPCStatusCode.resourceExhausted.rawValue)
                #expect(goAway.reason.contains("1025"))
                #expect(try await raw.receiveUntilClosed() == [])
                await server.expectServesNewClient()
            }
        }

        @Test("a frame of exactly the limit is accepted")
        func frameAtLimit() async throws {
            try await withTestServer({ $0.maxFrameBytes = 1024 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                // Pad with metadata until the envelope is exactly 1024 bytes.
                let frame = try #require((0..<1024).lazy.map { n in
                    Frames.frame(Frames.request(1, Frames.emptyCall, metadata: [("x-pad", [UInt8](repeating: 0x61, count: n))]))
                }.first { $0.count - 4 == 1024 })
                try #require(frame.count - 4 == 1024)
                try await raw.send(frame)
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        static let invalidEnvelopes: [(String, [UInt8])] = [
            ("not protobuf", [0xFF, 0xFF, 0xFF]),
            ("a truncated varint", [0x08]),
            ("an empty envelope (no kind)", []),
            ("an unknown kind", [0x08, 0x01, 0x4A, 0x00]),
            ("a length-delimited field that runs past the frame", [0x12, 0x10, 0x0A]),
        ]

        @Test("a frame that is not a valid Envelope: GoAway INVALID_ARGUMENT, then closed", arguments: invalidEnvelopes)
        func invalidEnvelope(name: String, body: [UInt8]) async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.frame(body: body))
                let goAway = try #require(try await raw.receiveEnvelope().goAway, "\(name)")
                #expect(goAway.errorCode == RPCStatusCode.invalidArgument.rawValue, "\(name)")
                #expect(try await raw.receiveUntilClosed() == [])
                await server.expectServesNewClient()
            }
        }

        @Test("a request whose method is not UTF-8: INVALID_ARGUMENT on its call, the connection stays usable")
        func requestWithInvalidUTF8Method() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.frame(body: [0x08, 0x01, 0x12, 0x04, 0x0A, 0x02, 0xC3, 0x28]))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .invalidArgument)
                try await raw.send(Frames.request(2, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("a client sending a Response or a StreamMessage: GoAway INVALID_ARGUMENT, then closed")
        func clientSendsServerFrames() async throws {
            try await withTestServer { server in
                for kind in [SessionrpcV1.Envelope.Kind.response(.init()), .streamMessage(.init())] {
                    let raw = try await RawConnection.open(port: server.port)
                    var envelope = SessionrpcV1.Envelope()
                    envelope.callId = 1
                    envelope.kind = kind
                    try await raw.send(envelope)
                    let goAway = try #require(try await raw.receiveEnvelope().goAway)
                    #expect(goAway.errorCode == RPCStatusCode.invalidArgument.rawValue)
                    #expect(try await raw.receiveUntilClosed() == [])
                }
                await server.expectServesNewClient()
            }
        }

        @Test("a half-sent frame: GoAway DEADLINE_EXCEEDED after the frame timeout, then closed")
        func halfSentFrame() async throws {
            try await withTestServer({ $0.frameTimeoutSeconds = 1 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                let elapsed = try await measure {
                    try await raw.send([0, 0, 0, 10, 1, 2, 3])
                    let goAway = try #require(try await raw.receiveEnvelope(timeout: 5).goAway)
                    #expect(goAway.errorCode == RPCStatusCode.deadlineExceeded.rawValue)
                    #expect(try await raw.receiveUntilClosed() == [])
                }
                #expect(elapsed > 0.9)
                await server.expectServesNewClient()
            }
        }

        // MARK: - Connection frames

        @Test("Ping is answered with a Pong echoing its opaque value")
        func pingPong() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.ping(0xDEAD_BEEF_0123_4567))
                let pong = try await raw.receiveEnvelope()
                #expect(pong.callId == 0)
                #expect(pong.kind == .pong({ var p = SessionrpcV1.Pong(); p.opaque = 0xDEAD_BEEF_0123_4567; return p }()))
                await server.expectServesNewClient()
            }
        }

        @Test("a client GoAway: calls in flight finish, new ones are refused UNAVAILABLE, then the server closes")
        func clientGoAway() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [5, 6], intervalUs: 50_000)))
                try await raw.send(Frames.goAway())
                try await raw.send(Frames.request(2, Frames.emptyCall))
                var codes: [UInt64: RPCStatusCode] = [:]
                var messages = 0
                while codes.count < 2 {
                    let envelope = try await raw.receiveEnvelope()
                    switch envelope.kind {
                    case .response(let r)?: codes[envelope.callId] = r.code
                    case .streamMessage?: messages += 1
                    default: Issue.record("unexpected \(envelope)")
                    }
                }
                #expect(codes == [1: .ok, 2: .unavailable])
                #expect(messages == 2)
                #expect(try await raw.receiveUntilClosed() == [])
                await server.expectServesNewClient()
            }
        }

        @Test("a Cancel for a call that is not in flight is ignored")
        func cancelUnknownCall() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.cancel(99))
                try await raw.send(Frames.request(100, Frames.emptyCall))
                let envelope = try await raw.receiveEnvelope()
                #expect(envelope.callId == 100)
                #expect(envelope.response?.code == .ok)
                #expect(envelope.response?.payload == [])
                await server.expectServesNewClient()
            }
        }

        @Test("a Cancel stops a streaming call: Response CANCELLED, no more messages")
        func cancelStream() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, ProbeService.ticks.path))
                let first = try await raw.receiveEnvelope()
                #expect(first.callId == 1)
                try await raw.send(Frames.cancel(1))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .cancelled)
                #expect(await eventually("handler saw the cancel") { server.probe.counts.cancelled == 1 })
                // Nothing more on call 1: the next frame is the answer to call 2.
                try await raw.send(Frames.request(2, Frames.emptyCall))
                let next = try await raw.receiveEnvelope()
                #expect(next.callId == 2)
                #expect(next.response?.code == .ok)
                await server.expectServesNewClient()
            }
        }

        // MARK: - Calls

        static let invalidPayloads: [(String, [UInt8])] = [
            ("not protobuf", [0xFF, 0xFF]),
            ("invalid UTF-8 in a string field", [0x3A, 0x04, 0x12, 0x02, 0xC3, 0x28]),
            ("an unknown enum value", [0x08, 0x05]),
            ("a truncated submessage", [0x1A, 0x05, 0x12]),
        ]

        @Test("a request payload that is not the method's message: INVALID_ARGUMENT, and the connection keeps working", arguments: invalidPayloads)
        func invalidPayload(name: String, payload: [UInt8]) async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.unaryCall, payload: payload))
                let (unary, _) = try await raw.receiveResponse(callID: 1)
                #expect(unary.code == .invalidArgument, "\(name)")
                #expect(unary.payload == nil)
                try await raw.send(Frames.request(2, Frames.streamingOutputCall, payload: payload))
                let (streaming, messages) = try await raw.receiveResponse(callID: 2)
                #expect(streaming.code == .invalidArgument, "\(name)")
                #expect(messages.isEmpty)
                try await raw.send(Frames.request(3, Frames.unaryCall, payload: Frames.unaryPayload(responseSize: 7)))
                let (ok, _) = try await raw.receiveResponse(callID: 3)
                #expect(ok.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("an unknown method or service: UNIMPLEMENTED", arguments: [
            "/grpc.testing.TestService/Nope", "/no.such.Service/Method", "grpc.testing.TestService/EmptyCall", "", "/", "//",
        ])
        func unknownMethod(path: String) async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, path))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .unimplemented)
                #expect(!response.statusMessage.isEmpty)
                try await raw.send(Frames.request(2, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("a call id already in flight: INVALID_ARGUMENT on that id; the first call is unharmed")
        func duplicateCallID() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(5, ProbeService.ticks.path))
                #expect(try await raw.receiveEnvelope().callId == 5)  // the stream is running
                try await raw.send(Frames.request(5, Frames.emptyCall))
                let (duplicate, _) = try await raw.receiveResponse(callID: 5)
                #expect(duplicate.code == .invalidArgument)
                #expect(duplicate.statusMessage.contains("already in flight"))
                // The first call 5 is still running: it sends more messages until cancelled.
                #expect(try await raw.receiveEnvelope().kind.map { if case .streamMessage = $0 { true } else { false } } == true)
                try await raw.send(Frames.cancel(5))
                #expect(try await raw.receiveResponse(callID: 5).response.code == .cancelled)
                try await raw.send(Frames.request(6, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 6).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("call ids must increase: a smaller, a reused or a zero id is INVALID_ARGUMENT")
        func callIDsMustIncrease() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(10, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 10).response.code == .ok)
                for id: UInt64 in [7, 10, 0] {
                    try await raw.send(Frames.request(id, Frames.emptyCall))
                    let (response, _) = try await raw.receiveResponse(callID: id)
                    #expect(response.code == .invalidArgument, "call id \(id)")
                }
                try await raw.send(Frames.request(11, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 11).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        static let invalidMetadata: [(String, [UInt8])] = [
            ("Bad Key", Array("v".utf8)),
            ("grpc-x", Array("v".utf8)),
            ("", Array("v".utf8)),
            ("x-Upper", Array("v".utf8)),
            (String(repeating: "k", count: 256), Array("v".utf8)),
            ("x-text", [0xC3, 0xA9]),  // "é": not ASCII
            ("x-text", [0x0A]),
            ("x-text", [0x00]),
        ]

        @Test("an invalid metadata key or a non-ASCII value for a text key: INVALID_ARGUMENT", arguments: invalidMetadata)
        func badMetadata(key: String, value: [UInt8]) async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.emptyCall, metadata: [("x-fine", Array("ok".utf8)), (key, value)]))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .invalidArgument)
                try await raw.send(Frames.request(2, Frames.emptyCall))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test(
            "a metadata key with an embedded NUL byte is refused, not read as its prefix"
        )
        func metadataKeyWithNUL() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                // Sanity check of the hand-written encoding: a plain key is accepted.
                try await raw.send(Frames.rawRequest(1, method: Array(Frames.emptyCall.utf8), metadataKey: Array("x-ok".utf8)))
                #expect(try await raw.receiveResponse(callID: 1).response.code == .ok)
                try await raw.send(Frames.rawRequest(2, method: Array(Frames.emptyCall.utf8), metadataKey: Array("x-ok\u{0}Bad Key".utf8)))
                let (response, _) = try await raw.receiveResponse(callID: 2)
                #expect(response.code == .invalidArgument)
                await server.expectServesNewClient()
            }
        }

        @Test(
            "a method name with an embedded NUL byte is not taken for its prefix"
        )
        func methodWithNUL() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.rawRequest(1, method: Array((Frames.emptyCall + "\u{0}/Other").utf8)))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code != .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("a -bin key carries any bytes, and they come back exactly")
        func binaryMetadataRoundTrip() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                let bytes: [UInt8] = [0x00, 0x01, 0x0A, 0x7F, 0x80, 0xC3, 0xFF]
                try await raw.send(Frames.request(1, Frames.unaryCall, payload: Frames.unaryPayload(responseSize: 1),
                                                  metadata: [("x-grpc-test-echo-trailing-bin", bytes)]))
                let (response, _) = try await raw.receiveResponse(callID: 1)
                #expect(response.code == .ok)
                #expect(response.trailingMetadata.map(\.key) == ["x-grpc-test-echo-trailing-bin"])
                #expect(response.trailingMetadata.first?.value == bytes)
                await server.expectServesNewClient()
            }
        }

        @Test("metadata over maxMetadataBytes: RESOURCE_EXHAUSTED; exactly at the limit: accepted")
        func metadataOverLimit() async throws {
            try await withTestServer({ $0.maxMetadataBytes = 100 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                // "x-big" is 5 bytes: 5 + 96 = 101 bytes.
                try await raw.send(Frames.request(1, Frames.emptyCall, metadata: [("x-big", [UInt8](repeating: 0x61, count: 96))]))
                let (over, _) = try await raw.receiveResponse(callID: 1)
                #expect(over.code == .resourceExhausted)
                try await raw.send(Frames.request(2, Frames.emptyCall, metadata: [("x-big", [UInt8](repeating: 0x61, count: 95))]))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("more concurrent calls than maxConcurrentCallsPerConnection: RESOURCE_EXHAUSTED")
        func tooManyConcurrentCalls() async throws {
            try await withTestServer({ $0.maxConcurrentCallsPerConnection = 2 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, ProbeService.ticks.path))
                try await raw.send(Frames.request(2, ProbeService.ticks.path))
                try await raw.send(Frames.request(3, ProbeService.ticks.path))
                let (third, _) = try await raw.receiveResponse(callID: 3)
                #expect(third.code == .resourceExhausted)
                try await raw.send(Frames.cancel(1))
                #expect(try await raw.receiveResponse(callID: 1).response.code == .cancelled)
                // A slot is free again.
                try await raw.send(Frames.request(4, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [3])))
                let (fourth, messages) = try await raw.receiveResponse(callID: 4)
                #expect(fourth.code == .ok)
                #expect(messages.count == 1)
                try await raw.send(Frames.cancel(2))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .cancelled)
                await server.expectServesNewClient()
            }
        }

        @Test("a huge timeout is accepted (and clamped), not overflowed")
        func hugeTimeout() async throws {
            try await withTestServer { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.emptyCall, timeoutMicros: .max))
                #expect(try await raw.receiveResponse(callID: 1).response.code == .ok)
                try await raw.send(Frames.request(2, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [1]), timeoutMicros: .max))
                #expect(try await raw.receiveResponse(callID: 2).response.code == .ok)
                try await raw.send(Frames.request(3, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [1], intervalUs: 1_000_000), timeoutMicros: 1))
                #expect(try await raw.receiveResponse(callID: 3).response.code == .deadlineExceeded)
                await server.expectServesNewClient()
            }
        }
    }
}
