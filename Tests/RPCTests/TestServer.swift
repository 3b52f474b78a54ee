import Dispatch
import RPC
import SessionAPI
import SessionClient
import SessionServer
import Synchronization
import Testing

/// Every suite that runs a real server or real sockets, nested here and run
/// one test at a time: their timeouts are short (so the suite stays fast), and
/// a 1000-call test next to an idle-timeout test on a 2-core machine would
/// make the latter's timing meaningless. Pure unit suites run in parallel.
@Suite("Over loopback", .serialized)
struct Loopback {}

/// A real `RPCServer` on 127.0.0.1, port 0, hosting the interop
/// `TestServiceProvider`, a `HealthProvider` and the test-only
/// ``ProbeService``, with a client channel pointed at it.
final class TestServer: Sendable {
    let server: RPCServer
    let health: HealthProvider
    let probe: ProbeService
    let channel: RPCClientChannel

    var port: Int { server.port }
    var configuration: RPCServerConfiguration { server.configuration }
    /// The interop client on the shared channel.
    var client: GrpcTesting.TestService.Client { .init(channel: channel) }
    var healthClient: GrpcHealthV1.Health.Client { .init(channel: channel) }

    /// Short limits so that every test stays fast; tests lower them further.
    static func defaultConfiguration() -> RPCServerConfiguration {
        var c = RPCServerConfiguration()
        c.host = "127.0.0.1"
        c.port = 0
        c.shutdownGraceSeconds = 2
        return c
    }

    /// Everything the server logs is kept (a raw connection closed under a
    /// test shows the server's lines about it); warnings and errors still show.
    private static let recordingLogger = ServerLogRecorder.logger()

    init(_ configure: (inout RPCServerConfiguration) -> Void = { _ in }) throws {
        var configuration = Self.defaultConfiguration()
        configure(&configuration)
        health = HealthProvider()
        probe = ProbeService()
        server = RPCServer(
            configuration: configuration, services: [TestServiceProvider(), health, probe], logger: Self.recordingLogger)
        try server.start()
        channel = RPCClientChannel(host: "127.0.0.1", port: server.port)
    }

    /// Closes the client, shuts the server down gracefully and waits until it
    /// has stopped.
    func stop(within seconds: Double = 10, sourceLocation: SourceLocation = #_sourceLocation) async {
        channel.close()
        server.beginGracefulShutdown()
        await waitUntilStopped(within: seconds, sourceLocation: sourceLocation)
    }

    /// Waits (after `beginGracefulShutdown()`) until `stopped()` returns,
    /// failing the test if that takes longer than `seconds`.
    func waitUntilStopped(within seconds: Double = 5, sourceLocation: SourceLocation = #_sourceLocation) async {
        // Poll first: `RPCServer.stopped()` parks a Dispatch worker thread
        // until the server has stopped, and many tests stop servers at once.
        guard await eventually(within: seconds, "all connections closed", sourceLocation: sourceLocation, { server.connectionCount == 0 }) else {
            return
        }
        let rpcServer = self.server
        do {
            try await RPCTests.within(10) { await rpcServer.stopped() }
        } catch {
            Issue.record("stopped() did not return although no connection is left", sourceLocation: sourceLocation)
        }
    }

    /// Asserts that a fresh, well-behaved client is served (used after every
    /// bad-input case): a new channel, so a new connection.
    func expectServesNewClient(sourceLocation: SourceLocation = #_sourceLocation) async {
        let fresh = RPCClientChannel(host: "127.0.0.1", port: port)
        defer { fresh.close() }
        do {
            var request = GrpcTesting.SimpleRequest()
            request.responseSize = 10
            let response = try await GrpcTesting.TestService.Client(channel: fresh).unaryCall(
                request, options: .init(timeout: .seconds(5)))
            #expect(response.payload?.body.count == 10, sourceLocation: sourceLocation)
        } catch {
            Issue.record("a well-behaved client was not served: \(error)", sourceLocation: sourceLocation)
        }
    }
}

/// Runs `body` with a fresh server and always stops it afterwards.
func withTestServer<T>(
    _ configure: (inout RPCServerConfiguration) -> Void = { _ in },
    _ body: (TestServer) async throws -> T
) async throws -> T {
    let server = try TestServer(configure)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

// MARK: - Time helpers

struct TimedOut: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "timed out after \(seconds) s" }
}

/// Runs `operation`, throwing ``TimedOut`` when it has not finished within
/// `seconds`. The operation is cancelled but not awaited past the limit (it
/// may be stuck in a blocking wait that cancellation cannot end).
func within<T: Sendable>(_ seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = OneShot<T>()
    let task = Task {
        do { outcome.deliver(.success(try await operation())) } catch { outcome.deliver(.failure(error)) }
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
        outcome.deliver(.failure(TimedOut(seconds: seconds)))
        task.cancel()
    }
    return try await outcome.value()
}

/// A result delivered once (the first delivery wins) and awaited once.
final class OneShot<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<T, any Error>?
    }

    private let state = Mutex(State())

    func deliver(_ result: Result<T, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<T, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { c in
            let ready = state.withLock { s -> Result<T, any Error>? in
                if let r = s.result { return r }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }
}

/// Polls `condition` every few milliseconds until it holds or `seconds` pass.
func eventually(
    within seconds: Double = 30, _ what: String = "condition",
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async -> Bool {
    let deadline = monotonic() + seconds
    while monotonic() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    if condition() { return true }
    Issue.record("\(what) did not hold within \(seconds) s", sourceLocation: sourceLocation)
    return false
}

/// Monotonic seconds.
func monotonic() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// Seconds `body` took.
func measure(_ body: () async throws -> Void) async rethrows -> Double {
    let start = monotonic()
    try await body()
    return monotonic() - start
}
