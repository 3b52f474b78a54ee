import Glibc
import RPC
import SessionAPI
import Synchronization
import Testing

extension Loopback {
    /// Peers that try to exhaust the server: too many connections from one
    /// address, connections that never call, frames trickled byte by byte,
    /// sizes chosen to make the server allocate, answers never read. Each test
    /// also checks that a well-behaved client is served meanwhile.
    @Suite("Hostile peers")
    struct HostilePeerTests {
        @Test("one address cannot take every slot: over maxConnectionsPerPeer it is refused, other addresses are served")
        func perPeerConnectionLimit() async throws {
            try await withTestServer({ $0.maxConnectionsPerPeer = 4; $0.maxConnections = 100 }) { server in
                // The hostile host: 127.0.0.2, connections that only send the preface.
                var held: [RawConnection] = []
                for _ in 0..<4 { held.append(try await RawConnection.open(port: server.port, source: "127.0.0.2")) }
                #expect(await eventually("4 connections admitted") { server.server.connectionCount == 4 })
                for _ in 0..<3 {
                    let refused = try await RawConnection.connect(port: server.port, sendPreface: false, source: "127.0.0.2")
                    #expect(try await refused.receive(exactly: 8) == Preface.bytes)
                    let goAway = try #require(try await refused.receiveEnvelope().goAway)
                    #expect(goAway.errorCode == RPCStatusCode.resourceExhausted.rawValue)
                    #expect(goAway.reason.contains("127.0.0.2"))
                    #expect(try await refused.receiveUntilClosed() == [])
                }
                // Another address is served while the hostile one holds its share.
                await server.expectServesNewClient()
                // A closed connection gives its slot back (once the server has seen the close: until
                // then a new connection from the address is still over its limit and refused).
                held.removeLast().close()
                #expect(await eventually("a slot freed") { server.server.connectionCount(from: "127.0.0.2") <= 3 })
                let again = try await RawConnection.open(port: server.port, source: "127.0.0.2")
                try await again.send(Frames.request(1, Frames.emptyCall))
                #expect(try await again.receiveResponse(callID: 1).response.code == .ok)
            }
        }

        @Test("a connection that sends its preface but no call is told to go away after firstCallTimeout")
        func firstCallDeadline() async throws {
            try await withTestServer({ $0.firstCallTimeoutSeconds = 0.5 }) { server in
                let start = monotonic()
                let silent = try await RawConnection.open(port: server.port)
                let goAway = try #require(try await silent.receiveEnvelope(timeout: 30).goAway)
                #expect(goAway.errorCode == 0)
                #expect(goAway.lastCallId == 0)
                #expect(goAway.reason.contains("no call"))
                #expect(try await silent.receiveUntilClosed(timeout: 30) == [])
                #expect(monotonic() - start > 0.45)

                // A connection that calls in time is not affected.
                let busy = try await RawConnection.open(port: server.port)
                try await busy.send(Frames.request(1, Frames.emptyCall))
                #expect(try await busy.receiveResponse(callID: 1).response.code == .ok)
                await server.expectServesNewClient()
            }
        }

        @Test("a frame trickled below minReceiveBytesPerSecond is cut off long before the frame timeout")
        func minimumReceiveRate() async throws {
            try await withTestServer({ $0.frameTimeoutSeconds = 60; $0.minReceiveBytesPerSecond = 1000 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                let frame = Frames.frame(Frames.request(1, Frames.unaryCall, payload: Frames.unaryPayload(responseSize: 1, bodySize: 4000)))
                // 50 bytes every 100 ms: 500 bytes/s, half the minimum.
                var sent = 0
                var goAway: SessionrpcV1.GoAway?
                let start = monotonic()
                while goAway == nil, sent < frame.count {
                    try await raw.send(Array(frame[sent..<min(sent + 50, frame.count)]))
                    sent += 50
                    try await Task.sleep(nanoseconds: 100_000_000)
                    if let envelope = try? await raw.receiveEnvelope(timeout: 0.01) { goAway = envelope.goAway }
                }
                if goAway == nil { goAway = try await raw.receiveEnvelope(timeout: 30).goAway }
                #expect(goAway?.errorCode == RPCStatusCode.deadlineExceeded.rawValue)
                #expect(goAway?.reason.contains("bytes/s") == true)
                #expect(sent < frame.count, "the whole trickled frame was accepted")
                #expect(monotonic() - start > 1.9)
                await server.expectServesNewClient()
            }
        }

        @Test("the frame timeout times each frame from its own first byte: a steady sender whose writes straddle frames is never cut off")
        func frameClockPerFrame() async throws {
            // A timeout of 1 s: a loaded machine can stall the sender or the server for a few hundred ms.
            try await withTestServer({ $0.frameTimeoutSeconds = 1 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                // 40 KB requests sent in 16 KiB writes: the buffer almost never
                // ends on a frame boundary, yet every frame completes at once.
                var stream: [UInt8] = []
                let calls = 120
                for id in 1...calls {
                    stream += Frames.frame(Frames.request(UInt64(id), Frames.unaryCall, payload: Frames.unaryPayload(responseSize: 1, bodySize: 40_000)))
                }
                let start = monotonic()
                var offset = 0
                var answered = 0
                // Spread the writes over more than 3 frame timeouts.
                while offset < stream.count {
                    try await raw.send(Array(stream[offset..<min(offset + 16 * 1024, stream.count)]))
                    offset += 16 * 1024
                    try await Task.sleep(nanoseconds: 12_000_000)
                }
                #expect(monotonic() - start > 3)
                while answered < calls {
                    let envelope = try await raw.receiveEnvelope(timeout: 30)
                    #expect(envelope.goAway == nil, "closed: \(envelope)")
                    if envelope.goAway != nil { return }
                    if case .response(let r)? = envelope.kind {
                        #expect(r.statusCode == 0)
                        answered += 1
                    }
                }
            }
        }

        @Test("TestService sizes are checked before anything is allocated: 2 GiB answers are refused, the server lives")
        func callerChosenSizes() async throws {
            try await withTestServer { server in
                var unary = GrpcTesting.SimpleRequest()
                unary.responseSize = Int32.max
                let unaryError = await #expect(throws: RPCError.self) { _ = try await server.client.unaryCall(unary) }
                #expect(unaryError?.code == .resourceExhausted)
                #expect(unaryError?.message.contains("exceeds the limit") == true)

                // One bad size among good ones: refused before the first message.
                let stream = GrpcTesting.StreamingOutputCallRequest.with(sizes: [10, Int32.max, 10])
                var received = 0
                let streamError = await #expect(throws: RPCError.self) {
                    for try await _ in server.client.streamingOutputCall(stream) { received += 1 }
                }
                #expect(streamError?.code == .resourceExhausted)
                #expect(received == 0)
                await server.expectServesNewClient()
            }
        }

        @Test("pool calls pipelined by a peer that never reads: only as many start as the output bound has room for")
        func pipelinedPoolCallsStayBounded() async throws {
            let bound = 1024 * 1024
            try await withTestServer({ $0.maxBufferedBytesPerConnection = bound }) { server in
                let hog = try await RawConnection.open(port: server.port, receiveBuffer: 4096)
                // 1024 requests (one read or a few), each for an 80 KiB answer: 80 MiB if all ran.
                var burst: [UInt8] = []
                let payload = Frames.unaryPayload(responseSize: 80 * 1024)
                for id in 1...1024 {
                    burst += Frames.frame(Frames.request(UInt64(id), ProbeService.sizedOnPool.path, payload: payload))
                }
                try await hog.send(burst, timeout: 30)
                // Wait until the server has stopped starting calls: the count holds still.
                var handled = -1
                let deadline = monotonic() + 30
                while monotonic() < deadline {
                    try await Task.sleep(nanoseconds: 300_000_000)
                    let now = server.probe.counts.sizedOnPool
                    if now == handled { break }
                    handled = now
                }
                // The bound (1 MiB), the kernel's socket buffers (4 MiB send at
                // most) and the calls the estimate lets run at once allow ~90
                // answers of 80 KiB, not 1024.
                #expect(handled > 0)
                #expect(handled <= 150, "the server ran \(handled) calls for a peer that reads nothing")
                await server.expectServesNewClient()
                hog.close()
                #expect(await eventually("the hog's connection closed") { server.server.connectionCount == 0 })
            }
        }

        @Test("graceful shutdown closes the listener at once: a new connection is refused while in-flight calls finish")
        func listenerClosesAtShutdown() async throws {
            let server = try TestServer { $0.shutdownGraceSeconds = 30 }
            defer { server.channel.close() }
            // A call in flight keeps the server draining.
            let busy = try await RawConnection.open(port: server.port)
            try await busy.send(Frames.request(1, ProbeService.block.path))
            #expect(await eventually("the call started") { server.probe.counts.started == 1 })
            server.server.beginGracefulShutdown()
            let goAway = try #require(try await busy.receiveEnvelope(timeout: 30).goAway)
            #expect(goAway.lastCallId == 1)
            // The listener is closed by the time the go-away is out.
            #expect(await eventually("connections refused") {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(fd) }
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(server.port).bigEndian)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                let rc = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                return rc != 0 && errno == ECONNREFUSED
            })
            // The call in flight is not cut off: cancel it and see its status.
            try await busy.send(Frames.cancel(1))
            #expect(try await busy.receiveResponse(callID: 1, timeout: 30).response.code == .cancelled)
            busy.close()
            await server.waitUntilStopped(within: 30)
        }
    }
}
