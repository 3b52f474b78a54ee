import Glibc
import RPC
import SessionAPI
import SessionClient
import Testing

extension Loopback {
    @Suite("Graceful shutdown")
    struct GracefulShutdownTests {
        @Test("a call in flight completes OK, a new call is refused, and stopped() returns")
        func inFlightCallCompletes() async throws {
            let server = try TestServer()
            defer { server.channel.close() }
            let client = server.client
            let firstMessage = OneShot<Void>()
            let call = Task { () -> [Int] in
                var sizes: [Int] = []
                for try await message in client.streamingOutputCall(.with(sizes: [1, 2, 3], intervalUs: 150_000)) {
                    sizes.append(message.payload?.body.count ?? -1)
                    if sizes.count == 1 { firstMessage.deliver(.success(())) }
                }
                return sizes
            }
            try await firstMessage.value()
            server.server.beginGracefulShutdown()
            #expect(try await call.value == [1, 2, 3])

            let error = await #expect(throws: RPCError.self) { try await client.emptyCall() }
            #expect(error?.code == .unavailable)
            await server.waitUntilStopped(within: 5)
            #expect(server.server.connectionCount == 0)
        }

        @Test("on the wire: GoAway 0 with the last call id, later requests UNAVAILABLE, the call's Response, then close")
        func goAwayOnTheWire() async throws {
            let server = try TestServer()
            let raw = try await RawConnection.open(port: server.port)
            // Four more messages 200 ms apart after the first: request 2, sent when the GoAway arrives,
            // reaches the server long before call 1 ends and the connection closes, even on a loaded
            // machine (with 2 x 150 ms, a run under load once sent it too late to be answered).
            try await raw.send(Frames.request(1, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [1, 2, 3, 4, 5], intervalUs: 200_000)))
            #expect(try await raw.receiveEnvelope().callId == 1)
            server.server.beginGracefulShutdown()

            var goAway: SessionrpcV1.GoAway?
            var messages = 1
            var responses: [UInt64: RPCStatusCode] = [:]
            while responses[1] == nil {
                let envelope = try await raw.receiveEnvelope()
                switch envelope.kind {
                case .goAway(let g)?:
                    #expect(goAway == nil, "a second GoAway")
                    goAway = g
                    // Too late for new calls on this connection.
                    try await raw.send(Frames.request(2, Frames.emptyCall))
                case .streamMessage?:
                    messages += 1
                case .response(let r)?:
                    responses[envelope.callId] = r.code
                default:
                    Issue.record("unexpected \(envelope)")
                }
            }
            let g = try #require(goAway)
            #expect(g.errorCode == 0)
            #expect(g.lastCallId == 1)
            #expect(messages == 5)
            #expect(responses[1] == .ok)
            if responses[2] == nil {
                responses[2] = try await raw.receiveResponse(callID: 2).response.code
            }
            #expect(responses[2] == .unavailable)
            #expect(try await raw.receiveUntilClosed() == [])

            // New connections are refused: either not accepted at all, or told UNAVAILABLE.
            do {
                let late = try await RawConnection.connect(port: server.port, sendPreface: false)
                let bytes = try await late.receiveUntilClosed()
                if !bytes.isEmpty {
                    #expect(Array(bytes.prefix(8)) == Preface.bytes)
                }
            } catch RawConnection.Failure.posix(_, let e) {
                #expect(e == ECONNREFUSED)
            }
            await server.waitUntilStopped(within: 5)
        }

        @Test("calls still running when the grace period ends get UNAVAILABLE, and the server stops")
        func gracePeriodEnds() async throws {
            let server = try TestServer { $0.shutdownGraceSeconds = 0.3 }
            defer { server.channel.close() }
            let stream: RPCResponseStream<GrpcTesting.Empty> = server.channel.serverStreaming(ProbeService.ticks, request: GrpcTesting.Empty())
            var received = 0
            let elapsed = await measure {
                let error = await #expect(throws: RPCError.self) {
                    for try await _ in stream {
                        received += 1
                        if received == 1 { server.server.beginGracefulShutdown() }
                    }
                }
                #expect(error?.code == .unavailable)
            }
            #expect(received > 1)
            #expect(elapsed > 0.25)
            #expect(await eventually("handler cancelled") { server.probe.counts.cancelled == 1 })
            await server.waitUntilStopped(within: 5)
        }

        @Test("a server without connections stops at once; shutting down twice is harmless")
        func stopsAtOnce() async throws {
            let server = try TestServer()
            server.server.beginGracefulShutdown()
            server.server.beginGracefulShutdown()
            await server.waitUntilStopped(within: 2)
            await server.waitUntilStopped(within: 2)
        }

        @Test("a connection that has not sent its preface yet is closed at shutdown")
        func connectionWithoutPreface() async throws {
            let server = try TestServer()
            let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
            #expect(await eventually("accepted") { server.server.connectionCount == 1 })
            server.server.beginGracefulShutdown()
            #expect(try await raw.receiveUntilClosed() == [])
            await server.waitUntilStopped(within: 5)
        }
    }
}
