import RPC
import SessionAPI
import SessionClient
import Testing

extension Loopback {
    /// The client channel against a scripted server (a raw listening socket), for
    /// server behaviour the real server never shows.
    @Suite("Client against a scripted server")
    struct ClientAgainstFakeServerTests {
        static func client(_ channel: RPCClientChannel) -> GrpcTesting.TestService.Client { .init(channel: channel) }

        @Test("a server that does not speak the protocol: UNAVAILABLE naming the problem")
        func notOurProtocol() async throws {
            let listener = try RawListener()
            let channel = RPCClientChannel(host: "127.0.0.1", port: listener.port)
            defer { channel.close() }
            let call = Task { try await Self.client(channel).emptyCall(options: .init(timeout: .seconds(60))) }
            let peer = try await listener.accept()
            // Answer only once the call is on this connection (preface and
            // request received): earlier, the client would fail the connection
            // before the call began, and retry it on a new one that nobody serves.
            #expect(try await peer.receive(exactly: 8) == Preface.bytes)
            _ = try await peer.receiveEnvelope()
            try await peer.send(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8))
            let result = await call.result
            #expect(RPCError.code(of: result.error) == .unavailable)
            #expect((result.error as? RPCError)?.message.contains("not a session RPC server") == true)
        }

        @Test("a server frame over the client's limit: UNAVAILABLE, and the next call uses a new connection")
        func oversizedServerFrame() async throws {
            let listener = try RawListener()
            var configuration = RPCClientConfiguration()
            configuration.maxFrameBytes = 1024
            let channel = RPCClientChannel(host: "127.0.0.1", port: listener.port, configuration: configuration)
            defer { channel.close() }
            let first = Task { try await Self.client(channel).emptyCall(options: .init(timeout: .seconds(60))) }
            let peer = try await listener.accept()
            #expect(try await peer.receive(exactly: 8) == Preface.bytes)
            _ = try await peer.receiveEnvelope()  // the call is on this connection
            try await peer.send(Preface.bytes + [0x00, 0x00, 0x04, 0x01])  // 1025 bytes announced
            let result = await first.result
            #expect(RPCError.code(of: result.error) == .unavailable)

            let second = Task { try await Self.client(channel).emptyCall(options: .init(timeout: .seconds(5))) }
            let next = try await listener.accept()
            #expect(try await next.receive(exactly: 8) == Preface.bytes)
            let request = try await next.receiveEnvelope()
            var answer = Preface.bytes
            Wire.appendResponse(callID: request.callId, code: .ok, message: "", payload: [], initialMetadata: [:], trailingMetadata: [:], to: &answer)
            try await next.send(answer)
            #expect(try await second.value == GrpcTesting.Empty())
        }

        @Test("a status code above 16 reads as UNKNOWN; the message is kept")
        func unknownStatusCode() async throws {
            let listener = try RawListener()
            let channel = RPCClientChannel(host: "127.0.0.1", port: listener.port)
            defer { channel.close() }
            let call = Task { try await Self.client(channel).emptyCall(options: .init(timeout: .seconds(60))) }
            let peer = try await listener.accept()
            #expect(try await peer.receive(exactly: 8) == Preface.bytes)
            let request = try await peer.receiveEnvelope()
            var response = SessionrpcV1.Response()
            response.statusCode = 99
            response.statusMessage = "from the future"
            var envelope = SessionrpcV1.Envelope()
            envelope.callId = request.callId
            envelope.kind = .response(response)
            try await peer.send(Preface.bytes + Frames.frame(envelope))
            let error = await call.result.error as? RPCError
            #expect(error?.code == .unknown)
            #expect(error?.message == "from the future")
        }

        @Test(
            "a call that the server's GoAway says it never started is retried on a new connection"
        )
        func retryCallRefusedByGoAway() async throws {
            let listener = try RawListener()
            let channel = RPCClientChannel(host: "127.0.0.1", port: listener.port)
            defer { channel.close() }
            let call = Task { try await Self.client(channel).emptyCall(options: .init(timeout: .seconds(5))) }

            // First connection: the server is going away and has started no call.
            let first = try await listener.accept()
            #expect(try await first.receive(exactly: 8) == Preface.bytes)
            _ = try await first.receiveEnvelope()  // the request, which this server will not run
            var goAway = Preface.bytes
            Wire.appendGoAway(lastCallID: 0, code: .ok, reason: "server is shutting down", to: &goAway)
            try await first.send(goAway)
            first.close()

            // Second connection: a server that answers.
            let second = try await listener.accept(timeout: 3)
            #expect(try await second.receive(exactly: 8) == Preface.bytes)
            let request = try await second.receiveEnvelope()
            guard case .request(let r)? = request.kind else {
                Issue.record("expected a request, got \(request)")
                return
            }
            #expect(r.method == Frames.emptyCall)
            var answer = Preface.bytes
            Wire.appendResponse(callID: request.callId, code: .ok, message: "", payload: [], initialMetadata: [:], trailingMetadata: [:], to: &answer)
            try await second.send(answer)
            #expect(try await call.value == GrpcTesting.Empty())
        }
    }
}
