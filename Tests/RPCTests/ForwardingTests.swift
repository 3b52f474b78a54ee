import RPC
import SessionAPI
import SessionServer
import Synchronization
import Testing

extension Loopback {
    /// `RPCForwardingService`: a front server that passes calls to another (as a standby passes
    /// them to the partition's owner) must be indistinguishable from the other, for every kind of
    /// call, and must never pass a call on twice.
    @Suite("Forwarding calls to another server")
    struct ForwardingTests {
        /// A front server whose TestService forwards, serves or refuses as `decision` says.
        final class Front: Sendable {
            let server: RPCServer
            let channel: RPCClientChannel
            let decision: Decision

            final class Decision: Sendable {
                private let value: Mutex<RPCForwardDecision>
                init(_ initial: RPCForwardDecision) { value = Mutex(initial) }
                func get() -> RPCForwardDecision { value.withLock { $0 } }
                func set(_ new: RPCForwardDecision) { value.withLock { $0 = new } }
            }

            init(_ initial: RPCForwardDecision) throws {
                let decision = Decision(initial)
                self.decision = decision
                var configuration = TestServer.defaultConfiguration()
                configuration.port = 0
                server = RPCServer(
                    configuration: configuration,
                    services: [
                        RPCForwardingService(TestServiceProvider(), forwardTo: { _ in decision.get() }),
                        RPCForwardingService(ProbeService(), forwardTo: { _ in decision.get() }),
                    ])
                try server.start()
                channel = RPCClientChannel(host: "127.0.0.1", port: server.port)
            }

            var client: GrpcTesting.TestService.Client { .init(channel: channel) }

            func stop() {
                channel.close()
                server.beginGracefulShutdown()
            }
        }

        @Test("unary and streaming calls come back from the other server with their metadata, status and messages")
        func forwardsEveryKindOfCall() async throws {
            try await withTestServer { owner in
                let front = try Front(.forward(owner.channel))
                defer { front.stop() }
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = 100_000
                let response: RPCResponse<GrpcTesting.SimpleResponse> = try await front.channel.unaryResponse(
                    GrpcTesting.TestService.Method.unaryCall, request: request, options: .init(metadata: InteropTests.echoMetadata()))
                #expect(response.message.payload?.body.count == 100_000)
                #expect(response.initialMetadata[InteropTests.echoInitialKey] == InteropTests.echoInitialValue)
                #expect(response.trailingMetadata.values(InteropTests.echoTrailingKey) == [.binary(InteropTests.echoTrailingValue)])

                // An error status, with its message and trailers.
                var failing = GrpcTesting.SimpleRequest()
                var status = GrpcTesting.EchoStatus()
                status.code = 9
                status.message = "from the owner"
                failing.responseStatus = status
                let error = await #expect(throws: RPCError.self) {
                    try await front.client.unaryCall(failing, options: .init(metadata: InteropTests.echoMetadata()))
                }
                #expect(error?.code == .failedPrecondition)
                #expect(error?.message == "from the owner")
                #expect(error?.metadata.values(InteropTests.echoTrailingKey) == [.binary(InteropTests.echoTrailingValue)])

                // Server streaming: every message, in order, then the trailers.
                let stream = front.client.streamingOutputCall(.with(sizes: [1, 2, 3, 50_000]), options: .init(metadata: InteropTests.echoMetadata()))
                var sizes: [Int] = []
                for try await message in stream { sizes.append(message.payload?.body.count ?? -1) }
                #expect(sizes == [1, 2, 3, 50_000])
                #expect(stream.metadata.initial[InteropTests.echoInitialKey] == InteropTests.echoInitialValue)
                #expect(stream.metadata.trailing.values(InteropTests.echoTrailingKey) == [.binary(InteropTests.echoTrailingValue)])
            }
        }

        @Test("the decision is taken per call: serve locally, forward, refuse")
        func decisionPerCall() async throws {
            let front = try Front(.refuse(RPCError(.unavailable, "no owner yet")))
            defer { front.stop() }
            let refused = await #expect(throws: RPCError.self) { try await front.client.emptyCall(GrpcTesting.Empty()) }
            #expect(refused?.code == .unavailable)
            #expect(refused?.message == "no owner yet")
            front.decision.set(.serveLocally)
            _ = try await front.client.emptyCall(GrpcTesting.Empty())
        }

        @Test("two servers that each take the other for the owner answer UNAVAILABLE instead of passing a call around")
        func noForwardingLoop() async throws {
            let a = try Front(.serveLocally), b = try Front(.serveLocally)
            defer { a.stop(); b.stop() }
            let aToB = RPCClientChannel(host: "127.0.0.1", port: b.server.port)
            let bToA = RPCClientChannel(host: "127.0.0.1", port: a.server.port)
            defer { aToB.close(); bToA.close() }
            a.decision.set(.forward(aToB))
            b.decision.set(.forward(bToA))
            let error = await #expect(throws: RPCError.self) {
                try await a.client.emptyCall(GrpcTesting.Empty(), options: .init(timeout: .seconds(10)))
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("forwarded") == true, "\(String(describing: error))")
            let stream = a.client.streamingOutputCall(.with(sizes: [1]), options: .init(timeout: .seconds(10)))
            let streamError = await #expect(throws: RPCError.self) { for try await _ in stream {} }
            #expect(streamError?.code == .unavailable)
        }

        @Test("cancelling a forwarded call cancels it on the other server (unary and streaming)")
        func cancelIsForwarded() async throws {
            try await withTestServer { owner in
                let front = try Front(.forward(owner.channel))
                defer { front.stop() }
                let channel = front.channel
                let call = Task {
                    let _: GrpcTesting.Empty = try await channel.unary(ProbeService.block, request: GrpcTesting.Empty())
                }
                #expect(await eventually("the owner's handler started") { owner.probe.counts.started == 1 })
                call.cancel()
                #expect(RPCError.code(of: await call.result.error) == .cancelled)
                #expect(await eventually("the owner's handler saw the cancel") { owner.probe.counts.cancelled == 1 })

                // A stream ended by the caller's deadline ends on the owner too.
                let stream: RPCResponseStream<GrpcTesting.Empty> = channel.serverStreaming(
                    ProbeService.ticks, request: GrpcTesting.Empty(), options: .init(timeout: .milliseconds(300)))
                let error = await #expect(throws: RPCError.self) { for try await _ in stream {} }
                #expect(error?.code == .deadlineExceeded)
                #expect(await eventually("the owner's stream saw the cancel") { owner.probe.counts.cancelled == 2 })
            }
        }

        /// `grpc.testing.TestService/EmptyCall` answered after 500 ms, on the pool; counts its calls.
        struct SlowEmpty: RPCService {
            let started = Started()
            final class Started: Sendable {
                private let n = Mutex(0)
                var count: Int { n.withLock { $0 } }
                func add() { n.withLock { $0 += 1 } }
            }
            var serviceName: String { "grpc.testing.TestService" }
            func methodHandlers() -> [RPCMethodHandler] {
                [RPCMethodHandler(unary: GrpcTesting.TestService.Method.emptyCall, policy: .pool) { [started] (_: GrpcTesting.Empty, _) -> GrpcTesting.Empty in
                    started.add()
                    usleepMillis(500)
                    return GrpcTesting.Empty()
                }]
            }
        }

        @Test("a forwarded call of an inline handler waits off the connection's queue: the connection's other traffic goes on")
        func forwardedInlineCallDoesNotHoldTheConnection() async throws {
            var configuration = TestServer.defaultConfiguration()
            configuration.port = 0
            let slowService = SlowEmpty()
            let owner = RPCServer(configuration: configuration, services: [slowService])
            try owner.start()
            defer { owner.beginGracefulShutdown() }
            let toOwner = RPCClientChannel(host: "127.0.0.1", port: owner.port)
            defer { toOwner.close() }
            let front = try Front(.forward(toOwner))  // TestService's EmptyCall is an inline handler
            defer { front.stop() }
            _ = try await front.channel.ping()  // connected
            let client = front.client
            let slow = Task { try await client.emptyCall(GrpcTesting.Empty(), options: .init(timeout: .seconds(10))) }
            #expect(await eventually("the forwarded call reached the owner") { slowService.started.count == 1 })
            let rtt = try await front.channel.ping()
            #expect(rtt < 250_000_000, "a ping on the same connection took \(rtt / 1_000_000) ms while a forwarded call waited")
            _ = try await slow.value
        }
    }
}
