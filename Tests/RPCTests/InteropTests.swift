import RPC
import SessionAPI
import SessionClient
import Synchronization
import Testing

extension Loopback {
    /// gRPC's interop test cases (those that fit unary and server-streaming
    /// calls), through the generated client over a real loopback server.
    @Suite("gRPC interop cases")
    struct InteropTests {
        static let echoInitialKey = "x-grpc-test-echo-initial"
        static let echoTrailingKey = "x-grpc-test-echo-trailing-bin"
        static let echoInitialValue = "test_initial_metadata_value"
        static let echoTrailingValue: [UInt8] = [0xAB, 0xAB, 0xAB]

        static func echoMetadata() -> RPCMetadata {
            var md = RPCMetadata()
            md.add(echoInitialKey, echoInitialValue)
            md.add(echoTrailingKey, binary: echoTrailingValue)
            return md
        }

        static func largeRequest() -> GrpcTesting.SimpleRequest {
            var request = GrpcTesting.SimpleRequest()
            request.responseSize = 314_159
            var payload = GrpcTesting.Payload()
            payload.body = [UInt8](repeating: 0, count: 271_828)
            request.payload = payload
            return request
        }

        @Test func empty_unary() async throws {
            try await withTestServer { server in
                let response = try await server.client.emptyCall(GrpcTesting.Empty())
                #expect(response == GrpcTesting.Empty())
            }
        }

        @Test func large_unary() async throws {
            try await withTestServer { server in
                let response = try await server.client.unaryCall(Self.largeRequest())
                let body = try #require(response.payload?.body)
                #expect(body.count == 314_159)
                #expect(body.allSatisfy { $0 == 0 })
                #expect(response.payload?.type == .compressable)
            }
        }

        @Test func server_streaming() async throws {
            try await withTestServer { server in
                let sizes: [Int32] = [31415, 9, 2653, 58979]
                var got: [Int] = []
                for try await message in server.client.streamingOutputCall(.with(sizes: sizes)) {
                    got.append(message.payload?.body.count ?? -1)
                }
                #expect(got == sizes.map(Int.init))
            }
        }

        @Test func empty_stream() async throws {
            try await withTestServer { server in
                var count = 0
                for try await _ in server.client.streamingOutputCall(.with(sizes: [])) { count += 1 }
                #expect(count == 0)
            }
        }

        @Test("custom_metadata (unary)")
        func custom_metadata_unary() async throws {
            try await withTestServer { server in
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = 314_159
                let response: RPCResponse<GrpcTesting.SimpleResponse> = try await server.channel.unaryResponse(
                    GrpcTesting.TestService.Method.unaryCall, request: request, options: .init(metadata: Self.echoMetadata()))
                #expect(response.message.payload?.body.count == 314_159)
                #expect(response.initialMetadata[Self.echoInitialKey] == Self.echoInitialValue)
                #expect(response.initialMetadata.values(Self.echoTrailingKey).isEmpty)
                #expect(response.trailingMetadata.values(Self.echoTrailingKey) == [.binary(Self.echoTrailingValue)])
                #expect(response.trailingMetadata[Self.echoInitialKey] == nil)
            }
        }

        @Test("custom_metadata (server streaming)")
        func custom_metadata_streaming() async throws {
            try await withTestServer { server in
                let stream = server.client.streamingOutputCall(.with(sizes: [314_159]), options: .init(metadata: Self.echoMetadata()))
                var sizes: [Int] = []
                for try await message in stream {
                    sizes.append(message.payload?.body.count ?? -1)
                    // Initial metadata is known as soon as the first message is.
                    #expect(stream.metadata.initial[Self.echoInitialKey] == Self.echoInitialValue)
                }
                #expect(sizes == [314_159])
                #expect(stream.metadata.initial[Self.echoInitialKey] == Self.echoInitialValue)
                #expect(stream.metadata.trailing.values(Self.echoTrailingKey) == [.binary(Self.echoTrailingValue)])
            }
        }

        @Test("custom_metadata on an error status still comes back")
        func custom_metadata_with_error() async throws {
            try await withTestServer { server in
                var request = GrpcTesting.SimpleRequest()
                var status = GrpcTesting.EchoStatus()
                status.code = 9
                status.message = "nope"
                request.responseStatus = status
                let error = await #expect(throws: RPCError.self) {
                    try await server.client.unaryCall(request, options: .init(metadata: Self.echoMetadata()))
                }
                #expect(error?.code == .failedPrecondition)
                #expect(error?.metadata.values(Self.echoTrailingKey) == [.binary(Self.echoTrailingValue)])
            }
        }

        @Test func status_code_and_message() async throws {
            try await withTestServer { server in
                var status = GrpcTesting.EchoStatus()
                status.code = 2
                status.message = "test status message"
                var request = GrpcTesting.SimpleRequest()
                request.responseStatus = status
                let unaryError = await #expect(throws: RPCError.self) { try await server.client.unaryCall(request) }
                #expect(unaryError?.code == .unknown)
                #expect(unaryError?.message == "test status message")

                var streaming = GrpcTesting.StreamingOutputCallRequest.with(sizes: [1])
                streaming.responseStatus = status
                var received = 0
                let streamError = await #expect(throws: RPCError.self) {
                    for try await _ in server.client.streamingOutputCall(streaming) { received += 1 }
                }
                #expect(received == 1)
                #expect(streamError?.code == .unknown)
                #expect(streamError?.message == "test status message")
            }
        }

        @Test func special_status_message() async throws {
            try await withTestServer { server in
                let text = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
                var status = GrpcTesting.EchoStatus()
                status.code = 2
                status.message = text
                var request = GrpcTesting.SimpleRequest()
                request.responseStatus = status
                let error = await #expect(throws: RPCError.self) { try await server.client.unaryCall(request) }
                #expect(error?.code == .unknown)
                #expect(error?.message == text)
            }
        }

        @Test("every status code 1...16 travels back as itself", arguments: 1...16)
        func everyStatusCode(code: Int32) async throws {
            try await withTestServer { server in
                var status = GrpcTesting.EchoStatus()
                status.code = code
                status.message = "code \(code)"
                var request = GrpcTesting.SimpleRequest()
                request.responseStatus = status
                let error = await #expect(throws: RPCError.self) { try await server.client.unaryCall(request) }
                #expect(error?.code.rawValue == UInt32(code))
                #expect(error?.message == "code \(code)")
            }
        }

        @Test func unimplemented_method() async throws {
            try await withTestServer { server in
                let error = await #expect(throws: RPCError.self) { try await server.client.unimplementedCall() }
                #expect(error?.code == .unimplemented)
            }
        }

        @Test func unimplemented_service() async throws {
            try await withTestServer { server in
                let client = GrpcTesting.UnimplementedService.Client(channel: server.channel)
                let error = await #expect(throws: RPCError.self) { try await client.unimplementedCall() }
                #expect(error?.code == .unimplemented)
                #expect(error?.message.contains("grpc.testing.UnimplementedService") == true)
            }
        }

        @Test("cancel_after_begin (server streaming)")
        func cancel_after_begin() async throws {
            try await withTestServer { server in
                let client = server.client
                let call = Task {
                    for try await _ in client.streamingOutputCall(.with(sizes: [1], intervalUs: 10_000_000)) {}
                }
                try await Task.sleep(nanoseconds: 20_000_000)
                do {
                    call.cancel()
                    let result = await call.result
                    #expect(RPCError.code(of: result.error) == .cancelled)
                }
                // The connection is still good.
                _ = try await client.emptyCall()
            }
        }

        @Test("cancel_after_begin (unary): the server's handler sees the cancel")
        func cancel_after_begin_unary() async throws {
            try await withTestServer { server in
                let channel = server.channel
                let call = Task {
                    let _: GrpcTesting.Empty = try await channel.unary(ProbeService.block, request: GrpcTesting.Empty())
                }
                #expect(await eventually("handler started") { server.probe.counts.started == 1 })
                do {
                    call.cancel()
                    let result = await call.result
                    #expect(throws: RPCError.self) { try result.get() }
                    #expect(RPCError.code(of: result.error) == .cancelled)
                }
                #expect(await eventually("handler saw the cancel") { server.probe.counts.cancelled == 1 })
                _ = try await server.client.emptyCall()
            }
        }

        @Test("a call started by an already-cancelled task ends CANCELLED without reaching the server")
        func alreadyCancelled() async throws {
            try await withTestServer { server in
                let channel = server.channel
                _ = try await server.client.emptyCall()  // connect first
                let call = Task {
                    withUnsafeCurrentTask { $0?.cancel() }
                    let _: GrpcTesting.Empty = try await channel.unary(ProbeService.block, request: GrpcTesting.Empty())
                }
                let result = await call.result
                #expect(RPCError.code(of: result.error) == .cancelled)
                try await Task.sleep(nanoseconds: 50_000_000)
                #expect(server.probe.counts.started == 0)
            }
        }

        @Test func cancel_after_first_response() async throws {
            try await withTestServer { server in
                let request = GrpcTesting.StreamingOutputCallRequest.with(sizes: [31415, 9, 2653, 58979], intervalUs: 100_000)
                var first: Int?
                for try await message in server.client.streamingOutputCall(request) {
                    first = message.payload?.body.count
                    break
                }
                #expect(first == 31415)
                // The connection stays usable and a following call works.
                let response = try await server.client.unaryCall(Self.largeRequest())
                #expect(response.payload?.body.count == 314_159)
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("cancel_after_first_response: the server's handler sees the cancel")
        func cancel_after_first_response_reaches_server() async throws {
            try await withTestServer { server in
                let stream: RPCResponseStream<GrpcTesting.Empty> = server.channel.serverStreaming(ProbeService.ticks, request: GrpcTesting.Empty())
                var received = 0
                for try await _ in stream {
                    received += 1
                    break
                }
                #expect(received == 1)
                #expect(await eventually("handler saw the cancel") { server.probe.counts.cancelled == 1 })
                _ = try await server.client.emptyCall()
            }
        }

        @Test func timeout_on_sleeping_server() async throws {
            try await withTestServer { server in
                let request = GrpcTesting.StreamingOutputCallRequest.with(sizes: [27182], intervalUs: 5_000_000)
                do {
                    let error = await #expect(throws: RPCError.self) {
                        for try await _ in server.client.streamingOutputCall(request, options: .init(timeout: .milliseconds(50))) {}
                    }
                    #expect(error?.code == .deadlineExceeded)
                }
                _ = try await server.client.emptyCall()
            }
        }

        @Test("timeout on a sleeping unary handler: DEADLINE_EXCEEDED, and the handler is told")
        func timeout_on_sleeping_unary() async throws {
            try await withTestServer { server in
                let channel = server.channel
                do {
                    let error = await #expect(throws: RPCError.self) {
                        let _: GrpcTesting.Empty = try await channel.unary(
                            ProbeService.block, request: GrpcTesting.Empty(), options: .init(timeout: .milliseconds(50)))
                    }
                    #expect(error?.code == .deadlineExceeded)
                }
                // The handler saw the deadline (unless the pool had not even started it by then).
                #expect(await eventually("handler saw the deadline") { server.probe.counts.cancelled == server.probe.counts.started })
            }
        }

        @Test("concurrent_large_unary: 1000 calls at once on one connection")
        func concurrent_large_unary() async throws {
            try await withTestServer { server in
                let client = server.client
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = 3_141
                var payload = GrpcTesting.Payload()
                payload.body = [UInt8](repeating: 0, count: 2_718)
                request.payload = payload
                let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for _ in 0..<1000 {
                        group.addTask { [request] in
                            try await client.unaryCall(request).payload?.body.count == 3_141
                        }
                    }
                    var ok = 0
                    for try await good in group where good { ok += 1 }
                    return ok
                }
                #expect(ok == 1000)
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("concurrent streams and unary calls interleave on one connection")
        func concurrentStreams() async throws {
            try await withTestServer { server in
                let client = server.client
                let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                    for i in 0..<50 {
                        group.addTask {
                            if i % 2 == 0 {
                                var n = 0
                                for try await m in client.streamingOutputCall(.with(sizes: [Int32(i), 100, 1000], intervalUs: 1000)) {
                                    n += m.payload?.body.count ?? 0
                                }
                                return n
                            }
                            var request = GrpcTesting.SimpleRequest()
                            request.responseSize = Int32(i)
                            return try await client.unaryCall(request).payload?.body.count ?? -1
                        }
                    }
                    var total = 0
                    for try await n in group { total += n }
                    return total
                }
                let expected = (0..<50).reduce(0) { $0 + ($1 % 2 == 0 ? $1 + 1100 : $1) }
                #expect(counts == expected)
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("rpc_soak: 2000 sequential calls on one connection")
        func rpc_soak() async throws {
            try await withTestServer { server in
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = 314
                var payload = GrpcTesting.Payload()
                payload.body = [UInt8](repeating: 0, count: 271)
                request.payload = payload
                for i in 0..<2000 {
                    let response = try await server.client.unaryCall(request)
                    if response.payload?.body.count != 314 {
                        Issue.record("call \(i) got a wrong response")
                        break
                    }
                }
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("ping: the shared connection answers with its round trip")
        func ping() async throws {
            try await withTestServer { server in
                let rtt = try await server.channel.ping()
                #expect(rtt > 0)
                #expect(rtt < 5_000_000_000)
            }
        }

        @Test("a call to a server that is not there fails UNAVAILABLE, fast")
        func noServer() async throws {
            let port = try await withTestServer { $0.port }  // a port that was just freed
            let channel = RPCClientChannel(host: "127.0.0.1", port: port)
            defer { channel.close() }
            let error = await #expect(throws: RPCError.self) {
                try await GrpcTesting.TestService.Client(channel: channel).emptyCall()
            }
            #expect(error?.code == .unavailable)
        }
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
