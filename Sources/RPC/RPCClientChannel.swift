import Dispatch
public import ProtoRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-call options.
public struct RPCCallOptions: Sendable {
    /// The call fails with DEADLINE_EXCEEDED after this long; the server is
    /// told the deadline and stops working on the call when it passes.
    public var timeout: Duration?
    /// Request metadata (e.g. `authorization: Bearer …`).
    public var metadata: RPCMetadata
    /// Wait for a connection (through reconnect back-off) instead of failing
    /// fast with UNAVAILABLE while the server is unreachable.
    public var waitForReady: Bool

    public init(timeout: Duration? = nil, metadata: RPCMetadata = [:], waitForReady: Bool = false) {
        self.timeout = timeout
        self.metadata = metadata
        self.waitForReady = waitForReady
    }
}

/// Client settings.
public struct RPCClientConfiguration: Sendable {
    public var connectTimeout: Duration = .seconds(5)
    /// First reconnect delay after a failed connect; grows by `backoffMultiplier` up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(5)
    public var backoffMultiplier: Double = 1.6
    /// Metadata added to every call (before the call's own).
    public var defaultMetadata: RPCMetadata = [:]
    public var maxFrameBytes: Int = 4 * 1024 * 1024
    /// TLS to the server (nil: plaintext). Files are read when the channel is made;
    /// a bad one fails every call with UNAVAILABLE naming it.
    public var tls: RPCClientTLS?

    public init() {}
}

/// A unary response with its metadata.
public struct RPCResponse<Message: Sendable>: Sendable {
    public var message: Message
    public var initialMetadata: RPCMetadata
    public var trailingMetadata: RPCMetadata
}

/// A client's view of one server: a single multiplexed connection shared by
/// every concurrent call, opened on first use and re-opened with
/// exponential back-off after it fails.
public final class RPCClientChannel: Sendable {
    public let host: String
    public let port: Int
    public let configuration: RPCClientConfiguration
    private let state = Mutex(State())
    /// Made once from `configuration.tls`.
    private let tls: Result<TLSContext, TLSError>?

    private struct State {
        var connection: ClientConnection?
        var connecting = false
        var waiters: [CheckedContinuation<Result<ClientConnection, RPCError>, Never>] = []
        var failures = 0
        var retryAt: UInt64 = 0
        var lastError: RPCError?
        var closed = false
    }

    public init(host: String, port: Int, configuration: RPCClientConfiguration = .init()) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.tls = configuration.tls.map { settings in Result { () throws(TLSError) in try TLSContext.client(settings) } }
    }

    /// `host:port` (or `[v6]:port`).
    public convenience init(address: String, configuration: RPCClientConfiguration = .init()) throws(RPCError) {
        guard let (host, port) = Socket.parseAddress(address) else {
            throw RPCError(.invalidArgument, "'\(address)' is not a HOST:PORT address")
        }
        self.init(host: host == "0.0.0.0" ? "127.0.0.1" : host, port: port, configuration: configuration)
    }

    deinit {
        state.withLock { $0.connection }?.close(reason: "channel released")
    }

    /// Closes the connection; later calls fail with UNAVAILABLE.
    public func close() {
        let c = state.withLock { s -> ClientConnection? in
            s.closed = true
            defer { s.connection = nil }
            return s.connection
        }
        c?.close()
    }

    // MARK: - Calls

    /// A unary call.
    public func unary<Request: ProtoCMessage, Response: ProtoCMessage>(
        _ method: RPCMethodDescriptor, request: Request, options: RPCCallOptions = .init()
    ) async throws(RPCError) -> Response {
        try await unaryResponse(method, request: request, options: options).message
    }

    /// A unary call, with the response metadata.
    public func unaryResponse<Request: ProtoCMessage, Response: ProtoCMessage>(
        _ method: RPCMethodDescriptor, request: Request, options: RPCCallOptions = .init()
    ) async throws(RPCError) -> RPCResponse<Response> {
        let deadline = options.timeout.map { monotonicNanos() &+ Self.nanos($0) }
        let metadata = try merged(options.metadata)
        let payload = request.serializedBytes()
        var outcome: CallOutcome
        var attempt = 0
        repeat {
            // A call the server certainly never started (it went away first)
            // is retried once on a fresh connection.
            attempt += 1
            let connection = try await connection(deadline: deadline, waitForReady: options.waitForReady)
            let remaining = try remainingNanos(deadline)
            outcome = await connection.unary(path: method.path, timeoutNanos: remaining, metadata: metadata, payload: payload)
        } while outcome.notStarted && attempt < 2
        if let error = outcome.error { throw error }
        guard let bytes = outcome.payload else {
            throw RPCError(.internal, "server ended \(method.path) with OK but sent no response message")
        }
        do {
            let message = try Response(serializedBytes: bytes)
            return RPCResponse(message: message, initialMetadata: outcome.initialMetadata, trailingMetadata: outcome.trailingMetadata)
        } catch {
            throw RPCError(.internal, "response of \(method.path) could not be decoded: \(error)")
        }
    }

    /// A server-streaming call; the call starts when iteration starts.
    public func serverStreaming<Request: ProtoCMessage, Response: ProtoCMessage>(
        _ method: RPCMethodDescriptor, request: Request, options: RPCCallOptions = .init()
    ) -> RPCResponseStream<Response> {
        RPCResponseStream(raw: RPCSerializedResponseStream(channel: self, path: method.path, payload: request.serializedBytes(), options: options))
    }

    /// A unary call of an already serialized request to the method at `path`
    /// (`/package.Service/Method`), answering the serialized response: for
    /// generic clients that find the message types at run time
    /// (`sessionctl call`). Retries, deadlines and metadata work as in ``unary(_:request:options:)``.
    public func unarySerialized(path: String, request: [UInt8], options: RPCCallOptions = .init()) async throws(RPCError) -> RPCResponse<[UInt8]> {
        let outcome = try await unaryBytes(path: path, payload: request, options: options)
        if let error = outcome.error { throw error }
        guard let bytes = outcome.payload else {
            throw RPCError(.internal, "server ended \(path) with OK but sent no response message")
        }
        return RPCResponse(message: bytes, initialMetadata: outcome.initialMetadata, trailingMetadata: outcome.trailingMetadata)
    }

    /// A server-streaming call of an already serialized request to the method
    /// at `path`, yielding each response message serialized (see ``unarySerialized(path:request:options:)``).
    public func serverStreamingSerialized(path: String, request: [UInt8], options: RPCCallOptions = .init()) -> RPCSerializedResponseStream {
        RPCSerializedResponseStream(channel: self, path: path, payload: request, options: options)
    }

    /// Round trip of a protocol ping on the shared connection, in nanoseconds.
    public func ping(timeout: Duration = .seconds(5)) async throws(RPCError) -> UInt64 {
        let connection = try await connection(deadline: monotonicNanos() &+ Self.nanos(timeout), waitForReady: false)
        return try await connection.ping()
    }

    /// A unary call of raw bytes (no decoding on either side): the outcome as it came, with the
    /// server's status, for passing a call on. A call the server certainly never started is retried once.
    package func unaryBytes(path: String, payload: [UInt8], options: RPCCallOptions) async throws(RPCError) -> CallOutcome {
        let deadline = options.timeout.map { monotonicNanos() &+ Self.nanos($0) }
        let metadata = try merged(options.metadata)
        var outcome: CallOutcome
        var attempt = 0
        repeat {
            attempt += 1
            let connection = try await connection(deadline: deadline, waitForReady: options.waitForReady)
            outcome = await connection.unary(path: path, timeoutNanos: try remainingNanos(deadline), metadata: metadata, payload: payload)
        } while outcome.notStarted && attempt < 2
        return outcome
    }

    package func openStream(path: String, payload: [UInt8], options: RPCCallOptions) async throws(RPCError) -> AsyncStream<StreamEvent> {
        let deadline = options.timeout.map { monotonicNanos() &+ Self.nanos($0) }
        let metadata = try merged(options.metadata)
        let connection = try await connection(deadline: deadline, waitForReady: options.waitForReady)
        return connection.serverStreaming(path: path, timeoutNanos: try remainingNanos(deadline), metadata: metadata, payload: payload)
    }

    private func merged(_ metadata: RPCMetadata) throws(RPCError) -> RPCMetadata {
        var all = configuration.defaultMetadata
        for e in metadata { all.add(e.key, e.value) }
        if let problem = all.problem() { throw RPCError(.invalidArgument, problem) }
        return all
    }

    private func remainingNanos(_ deadline: UInt64?) throws(RPCError) -> UInt64? {
        guard let deadline else { return nil }
        let now = monotonicNanos()
        guard deadline > now else { throw RPCError(.deadlineExceeded, "deadline exceeded before the call started") }
        return deadline - now
    }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        if s < 0 { return 0 }
        return UInt64(min(s, 1 << 33)) * 1_000_000_000 + UInt64(atto / 1_000_000_000)
    }

    // MARK: - Connection management

    private func connection(deadline: UInt64?, waitForReady: Bool) async throws(RPCError) -> ClientConnection {
        while true {
            enum Step { case ready(ClientConnection), connect, wait, fail(RPCError), sleep(UInt64) }
            let step = state.withLock { s -> Step in
                if s.closed { return .fail(RPCError(.unavailable, "channel is closed")) }
                if let c = s.connection { return .ready(c) }
                if s.connecting { return .wait }
                let now = monotonicNanos()
                if now < s.retryAt {
                    if waitForReady { return .sleep(s.retryAt - now) }
                    let ms = (s.retryAt - now) / 1_000_000
                    return .fail(RPCError(.unavailable, "\(s.lastError?.message ?? "server unreachable"); retrying in \(ms) ms"))
                }
                s.connecting = true
                return .connect
            }
            switch step {
            case .ready(let c):
                if c.isUsable { return c }
                state.withLock { s in if s.connection === c { s.connection = nil } }
            case .fail(let e):
                throw e
            case .sleep(let nanos):
                if let deadline, monotonicNanos() &+ nanos > deadline {
                    throw RPCError(.deadlineExceeded, "deadline exceeded while waiting to reconnect: \(state.withLock { $0.lastError?.message ?? "" })")
                }
                try? await Task.sleep(nanoseconds: nanos)
                if Task.isCancelled { throw RPCError(.cancelled, "call was cancelled") }
            case .wait:
                let r: Result<ClientConnection, RPCError> = await withCheckedContinuation { c in
                    let runNow = state.withLock { s -> Bool in
                        if s.connecting { s.waiters.append(c); return false }
                        return true
                    }
                    if runNow { c.resume(returning: .failure(RPCError(.unavailable, "retry"))) }
                }
                if case .success(let c) = r { return c }
                if case .failure(let e) = r, e.message != "retry", !waitForReady { throw e }
            case .connect:
                let r = await connectOnce()
                let waiters = state.withLock { s -> [CheckedContinuation<Result<ClientConnection, RPCError>, Never>] in
                    s.connecting = false
                    switch r {
                    case .success(let c):
                        s.connection = c
                        s.failures = 0
                        s.lastError = nil
                    case .failure(let e):
                        s.failures += 1
                        s.lastError = e
                        s.retryAt = monotonicNanos() &+ backoffNanos(failures: s.failures)
                    }
                    defer { s.waiters = [] }
                    return s.waiters
                }
                for w in waiters { w.resume(returning: r) }
                switch r {
                case .success(let c): return c
                case .failure(let e): if !waitForReady { throw e }
                }
            }
        }
    }

    private func backoffNanos(failures: Int) -> UInt64 {
        let base = Double(Self.nanos(configuration.initialBackoff)) * pow(configuration.backoffMultiplier, Double(failures - 1))
        let capped = min(base, Double(Self.nanos(configuration.maxBackoff)))
        return UInt64(capped * Double.random(in: 0.8...1.2))
    }

    private func connectOnce() async -> Result<ClientConnection, RPCError> {
        let host = self.host, port = self.port
        let timeoutMillis = Int32(clamping: Self.nanos(configuration.connectTimeout) / 1_000_000)
        let maxFrame = configuration.maxFrameBytes
        let tls = self.tls
        let serverName = configuration.tls?.serverName ?? host
        return await withCheckedContinuation { c in
            DispatchQueue.global().async {
                do {
                    let fd = try Socket.connect(host: host, port: port, timeoutMillis: timeoutMillis)
                    var session: TLSSession?
                    if let tls {
                        do {
                            let s = try TLSSession(context: try tls.get(), serverName: serverName)
                            try s.handshake(fd: fd, timeoutMillis: timeoutMillis)
                            session = s
                        } catch {
                            Glibc.close(fd)
                            return c.resume(returning: .failure(RPCError(.unavailable, "cannot connect to \(host):\(port): \(error)")))
                        }
                    }
                    let connection = ClientConnection(fd: fd, peer: "\(host):\(port)", maxFrameBytes: maxFrame, tls: session) { [weak self] closed in
                        self?.state.withLock { s in if s.connection === closed { s.connection = nil } }
                    }
                    c.resume(returning: .success(connection))
                } catch {
                    c.resume(returning: .failure(RPCError(.unavailable, "cannot connect to \(host):\(port): \(error)")))
                }
            }
        }
    }
}

private func pow(_ base: Double, _ exp: Double) -> Double {
    var r = 1.0
    var i = 0.0
    while i < exp { r *= base; i += 1 }
    return r
}

/// The responses of a server-streaming call, as an `AsyncSequence`.
/// Iterating starts the call; breaking out of the loop (or cancelling the
/// task) cancels it; a non-OK end throws `RPCError`.
public struct RPCResponseStream<Message: ProtoCMessage>: AsyncSequence, Sendable {
    public typealias Element = Message
    public typealias Failure = any Error

    let raw: RPCSerializedResponseStream
    /// Initial and trailing metadata, filled in as they arrive.
    public var metadata: RPCStreamMetadata { raw.metadata }

    public func makeAsyncIterator() -> Iterator {
        Iterator(raw: raw.makeAsyncIterator())
    }

    public struct Iterator: AsyncIteratorProtocol {
        var raw: RPCSerializedResponseStream.Iterator

        public mutating func next() async throws -> Message? {
            guard let bytes = try await raw.next() else { return nil }
            do {
                return try Message(serializedBytes: bytes)
            } catch {
                raw.done = true
                throw RPCError(.internal, "stream message of \(raw.stream.path) could not be decoded: \(error)")
            }
        }
    }
}

/// The responses of a server-streaming call as serialized messages (see
/// ``RPCClientChannel/serverStreamingSerialized(path:request:options:)``);
/// otherwise like ``RPCResponseStream``.
public struct RPCSerializedResponseStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    let channel: RPCClientChannel
    let path: String
    let payload: [UInt8]
    let options: RPCCallOptions
    /// Initial and trailing metadata, filled in as they arrive.
    public let metadata = RPCStreamMetadata()

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let stream: RPCSerializedResponseStream
        var events: AsyncStream<StreamEvent>.AsyncIterator?
        var done = false
        var retried = false

        init(stream: RPCSerializedResponseStream) { self.stream = stream }

        public mutating func next() async throws -> [UInt8]? {
            if done { return nil }
            if events == nil {
                do {
                    events = try await stream.channel.openStream(path: stream.path, payload: stream.payload, options: stream.options).makeAsyncIterator()
                } catch {
                    done = true
                    throw error
                }
            }
            guard let event = await events!.next() else {
                done = true
                if Task.isCancelled { throw RPCError(.cancelled, "call was cancelled") }
                return nil
            }
            if case .end(let outcome) = event, outcome.notStarted, !retried {
                // The server went away before starting the call: once more on a fresh connection.
                retried = true
                events = nil
                return try await next()
            }
            switch event {
            case .message(let bytes, let initial):
                if !initial.isEmpty { stream.metadata.setInitial(initial) }
                return bytes
            case .end(let outcome):
                done = true
                if !outcome.initialMetadata.isEmpty { stream.metadata.setInitial(outcome.initialMetadata) }
                stream.metadata.setTrailing(outcome.trailingMetadata)
                if let error = outcome.error { throw error }
                return nil
            }
        }
    }
}

/// Metadata of a stream, readable while and after it runs.
public final class RPCStreamMetadata: Sendable {
    private let state = Mutex<(RPCMetadata, RPCMetadata)>(([:], [:]))
    public var initial: RPCMetadata { state.withLock { $0.0 } }
    public var trailing: RPCMetadata { state.withLock { $0.1 } }
    func setInitial(_ m: RPCMetadata) { state.withLock { $0.0 = m } }
    func setTrailing(_ m: RPCMetadata) { state.withLock { $0.1 = m } }
}
