import Glibc
import RPC
import SessionAPI
import Synchronization
import Testing

extension Loopback {
    /// The server's limits: connections, idle and frame timeouts, buffered
    /// output. Exceeding one gives RESOURCE_EXHAUSTED or a clean close, never a
    /// crash or unbounded memory, and other peers keep being served.
    @Suite("Limits")
    struct LimitTests {
        @Test("more connections than maxConnections: preface, GoAway RESOURCE_EXHAUSTED, then closed")
        func tooManyConnections() async throws {
            try await withTestServer({ $0.maxConnections = 2 }) { server in
                let a = try await RawConnection.open(port: server.port)
                let b = try await RawConnection.open(port: server.port)
                #expect(server.server.connectionCount == 2)

                let refused = try await RawConnection.connect(port: server.port, sendPreface: false)
                #expect(try await refused.receive(exactly: 8) == Preface.bytes)
                let goAway = try #require(try await refused.receiveEnvelope().goAway)
                #expect(goAway.errorCode == RPCStatusCode.resourceExhausted.rawValue)
                #expect(goAway.lastCallId == 0)
                #expect(try await refused.receiveUntilClosed() == [])

                // A real client (which sends its preface and first call at once) is
                // told why. Its code depends on whether the call was registered
                // before the GoAway was read (RESOURCE_EXHAUSTED) or not (UNAVAILABLE).
                let channel = RPCClientChannel(host: "127.0.0.1", port: server.port)
                defer { channel.close() }
                let error = await #expect(throws: RPCError.self) {
                    try await GrpcTesting.TestService.Client(channel: channel).emptyCall()
                }
                #expect(error?.code == .resourceExhausted || error?.code == .unavailable)
                #expect(error?.message.contains("too many connections") == true, "\(String(describing: error))")

                a.close()
                b.close()
                #expect(await eventually("the two connections closed") { server.server.connectionCount == 0 })
                await server.expectServesNewClient()
            }
        }

        @Test("an idle connection gets GoAway 0 'idle' and is closed")
        func idleTimeout() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 1 }) { server in
                // Measured from before the connection exists: the server cannot count idleness earlier.
                let start = monotonic()
                let raw = try await RawConnection.open(port: server.port)
                let goAway = try #require(try await raw.receiveEnvelope(timeout: 5).goAway)
                #expect(goAway.errorCode == 0)
                #expect(goAway.reason.contains("idle"))
                #expect(try await raw.receiveUntilClosed() == [])
                #expect(monotonic() - start > 0.95)
                await server.expectServesNewClient()
            }
        }

        @Test("a call in flight keeps a connection from being idle")
        func callInFlightIsNotIdle() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 0.5 }) { server in
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.streamingOutputCall, payload: Frames.streamingPayload(sizes: [1, 1, 1], intervalUs: 400_000)))
                let (response, messages) = try await raw.receiveResponse(callID: 1, timeout: 10)
                #expect(response.code == .ok)
                #expect(messages.count == 3)
            }
        }

        @Test("pings alone do not keep a connection open: idleness counts from the last call (as gRPC's max connection idle)")
        func pingsDoNotKeepAlive() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 1; $0.firstCallTimeoutSeconds = 60 }) { server in
                let start = monotonic()
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.emptyCall))
                _ = try await raw.receiveResponse(callID: 1)
                // A peer that only pings (or trickles bytes) holds no slot for long.
                var goAway: SessionrpcV1.GoAway?
                var ping: UInt64 = 0
                while goAway == nil {
                    ping += 1
                    try await raw.send(Frames.ping(ping))
                    let envelope = try await raw.receiveEnvelope(timeout: 30)
                    goAway = envelope.goAway
                }
                #expect(goAway?.reason.contains("idle") == true)
                #expect(goAway?.lastCallId == 1)
                #expect(try await raw.receiveUntilClosed(timeout: 30) == [])
                #expect(monotonic() - start > 0.95)
            }
        }

        @Test("after an idle close, the client channel reconnects by itself: the next call succeeds at once")
        func channelReconnectsAfterIdleClose() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 0.3 }) { server in
                _ = try await server.client.emptyCall()
                #expect(await eventually("idle close") { server.server.connectionCount == 0 })
                // No retry: the server half-closes after its GoAway and waits for
                // the client's close, so the GoAway is never lost to a reset.
                _ = try await server.client.emptyCall()
                #expect(server.server.connectionCount == 1)
            }
        }

        @Test("calls racing an idle close are retried on a new connection, never failed")
        func callsRacingIdleClose() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 0.2 }) { server in
                let client = server.client
                // Calls spaced around the idle timeout: some are sent while the
                // server's GoAway is on its way. Every one must succeed.
                for round in 0..<12 {
                    _ = try await client.emptyCall(options: .init(timeout: .seconds(30)))
                    try await Task.sleep(nanoseconds: UInt64(150_000_000 + round * 10_000_000))
                }
            }
        }

        @Test(
            "the idle timeout does not answer a connection that has not sent its preface"
        )
        func idleBeforePreface() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 0.2; $0.frameTimeoutSeconds = 5 }) { server in
                let raw = try await RawConnection.connect(port: server.port, sendPreface: false)
                // Within the frame timeout, nothing may come back: not a frame before a preface.
                await #expect(throws: RawConnection.Failure.self) {
                    let bytes = try await raw.receiveUntilClosed(timeout: 1)
                    Issue.record("the server answered a connection without preface with \(hex(bytes)) and closed it")
                }
            }
        }

        @Test("a peer that never reads: the server stops reading from it, stays bounded, and keeps serving others")
        func nonReadingPeer() async throws {
            try await withTestServer({ $0.maxBufferedBytesPerConnection = 256 * 1024 }) { server in
                let rssBefore = Memory.residentBytes()
                let hog = try await RawConnection.open(port: server.port)

                // A well-behaved client on another connection, all along.
                let stop = Flag()
                let client = server.client
                let others = Task { () -> (served: Int, slowest: Double) in
                    var served = 0
                    var slowest = 0.0
                    while !stop.isSet {
                        let t = monotonic()
                        _ = try await client.emptyCall(options: .init(timeout: .seconds(5)))
                        slowest = max(slowest, monotonic() - t)
                        served += 1
                        try await Task.sleep(nanoseconds: 5_000_000)
                    }
                    return (served, slowest)
                }

                // Large requests for large responses, never reading the answers.
                var callID: UInt64 = 0
                var queued: [UInt8] = []
                var sent = 0
                var blockedSince: Double?
                var stoppedReading = false
                let payload = Frames.unaryPayload(responseSize: 64 * 1024, bodySize: 64 * 1024)
                while sent < 256 * 1024 * 1024 {
                    if queued.isEmpty {
                        callID += 1
                        queued = Frames.frame(Frames.request(callID, Frames.unaryCall, payload: payload))
                    }
                    let n = try hog.sendNow(queued)
                    if n > 0 {
                        queued.removeFirst(n)
                        sent += n
                        blockedSince = nil
                        continue
                    }
                    let now = monotonic()
                    if let since = blockedSince, now - since > 0.3 {
                        stoppedReading = true
                        break
                    }
                    if blockedSince == nil { blockedSince = now }
                    try await Task.sleep(nanoseconds: 2_000_000)
                }
                #expect(stoppedReading, "the server read \(sent) bytes from a peer that never reads")

                stop.set()
                let (served, slowest) = try await others.value
                #expect(served > 0)
                #expect(slowest < 3, "a call of another client took \(slowest) s")
                #expect(server.server.connectionCount == 2)
                let growth = Memory.residentBytes() - rssBefore
                #expect(growth < 256 * 1024 * 1024, "resident memory grew by \(growth / 1_048_576) MiB")

                hog.close()
                #expect(await eventually("the hog's connection closed") { server.server.connectionCount == 1 })
                await server.expectServesNewClient()
            }
        }

        @Test(
            "a burst of small requests for large responses: the server stops handling them once its output is over the bound"
        )
        func burstOfSmallRequests() async throws {
            try await withTestServer({ $0.maxBufferedBytesPerConnection = 64 * 1024 }) { server in
                // A peer with a tiny receive window that never reads.
                let hog = try await RawConnection.open(port: server.port, receiveBuffer: 4096)
                // 60 requests of ~40 bytes (one read for the server), each for a 256 KiB response.
                var burst: [UInt8] = []
                let payload = Frames.unaryPayload(responseSize: 256 * 1024)
                for id in 1...60 {
                    burst += Frames.frame(Frames.request(UInt64(id), ProbeService.sized.path, payload: payload))
                }
                try await hog.send(burst)
                // Wait until the server has stopped handling requests.
                var handled = -1
                let deadline = monotonic() + 5
                while monotonic() < deadline {
                    try await Task.sleep(nanoseconds: 300_000_000)
                    let now = server.probe.counts.sized
                    if now == handled { break }
                    handled = now
                }
                // The bound (64 KiB) plus what the kernel's socket buffers hold
                // (at most 4 MiB sent, 8 KiB received) allows some 18 responses
                // of 256 KiB, not 60 (15 MiB in the server's memory).
                #expect(handled <= 24, "the server handled \(handled) requests for a peer that reads nothing")
                hog.close()
                #expect(await eventually("the hog's connection closed") { server.server.connectionCount == 0 })
                await server.expectServesNewClient()
            }
        }

        @Test(
            "the idle timeout closes a connection even when its peer never reads"
        )
        func idleNonReadingPeer() async throws {
            try await withTestServer({ $0.idleTimeoutSeconds = 0.3; $0.maxBufferedBytesPerConnection = 64 * 1024 }) { server in
                let hog = try await RawConnection.open(port: server.port, receiveBuffer: 4096)
                var burst: [UInt8] = []
                // 10 MiB of responses: more than the kernel's send buffer takes (4 MiB at most).
                for id in 1...10 {
                    burst += Frames.frame(Frames.request(UInt64(id), Frames.unaryCall, payload: Frames.unaryPayload(responseSize: 1024 * 1024)))
                }
                try await hog.send(burst)
                #expect(await eventually(within: 5, "the server closed the connection") { server.server.connectionCount == 0 })
                hog.close()
            }
        }

        @Test(
            "the server never sends a frame over maxFrameBytes, even with response metadata"
        )
        func responseFramesStayWithinLimit() async throws {
            let limit = 64 * 1024
            try await withTestServer({ $0.maxFrameBytes = limit }) { server in
                // The response message alone fits (65472 = limit - 64 bytes); its echoed metadata does not.
                let payload = Frames.unaryPayload(responseSize: Int32(limit - 64 - 8))
                let metadata: [(key: String, value: [UInt8])] = [("x-grpc-test-echo-initial", [UInt8](repeating: 0x61, count: 4000))]
                let raw = try await RawConnection.open(port: server.port)
                try await raw.send(Frames.request(1, Frames.unaryCall, payload: payload, metadata: metadata))
                let header = try await raw.receive(exactly: 4)
                let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                #expect(length <= limit, "the server sent a frame of \(length) bytes over its limit of \(limit)")

                // A client with the same limit gets a status, not a dropped connection.
                var configuration = RPCClientConfiguration()
                configuration.maxFrameBytes = limit
                let channel = RPCClientChannel(host: "127.0.0.1", port: server.port, configuration: configuration)
                defer { channel.close() }
                var request = GrpcTesting.SimpleRequest()
                request.responseSize = Int32(limit - 64 - 8)
                var md = RPCMetadata()
                md.add("x-grpc-test-echo-initial", String(repeating: "a", count: 4000))
                do {
                    _ = try await GrpcTesting.TestService.Client(channel: channel).unaryCall(request, options: .init(metadata: md))
                } catch {
                    #expect(RPCError.code(of: error) != .unavailable, "\(error)")
                }
            }
        }
    }
}

/// A flag set once, read from any thread.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// The test process's memory, from /proc.
enum Memory {
    /// Resident set size in bytes (`VmRSS`).
    static func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 0 }
        let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
