import Dispatch
public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The Dispatch-based RPC server: a listening socket, one serial queue per
/// connection, handlers on the connection queue (`.inline`), the handler
/// pool (`.pool`) or Swift concurrency (streams).
///
/// Lifecycle: ``start()`` binds and accepts; ``beginGracefulShutdown()`` stops
/// accepting, sends go-away on every connection and lets in-flight calls
/// finish within the grace period; ``waitUntilStopped()`` returns once the
/// last connection has closed.
public final class RPCServer: Sendable {
    public let configuration: RPCServerConfiguration
    package let registry: [String: RPCMethodHandler]
    package let services: Set<String>
    package let logger: Logger
    private let acceptQueue = DispatchQueue(label: "rpc.accept")
    /// Where every connection's serial queue runs: the width-limited global pool, not one
    /// overcommitted thread per busy connection.
    static let connectionTarget = DispatchQueue.global(qos: .userInitiated)
    private let state = Mutex(State())
    private let stopped = DispatchSemaphore(value: 0)

    private struct State {
        var listenFD: Int32 = -1
        var port = 0
        var acceptSource: SourceBox?
        var connections: [ObjectIdentifier: ServerConnection] = [:]
        var connectionsPerPeer: [String: Int] = [:]
        var phase: Phase = .idle
        var nextConnectionID: UInt64 = 0
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        /// The calls of connections that have closed.
        var closedStats = RPCCallStats()
        /// Made by `start()` from the configuration's TLS settings.
        var tls: TLSContext?
    }

    private enum Phase { case idle, running, draining, stopped }

    /// Dispatch sources are thread-safe objects that Swift does not yet mark Sendable.
    private struct SourceBox: @unchecked Sendable {
        let source: any DispatchSourceRead
    }

    public init(configuration: RPCServerConfiguration, services: [any RPCService], logger: Logger = Logger(label: "rpc.server")) {
        self.configuration = configuration
        var registry: [String: RPCMethodHandler] = [:]
        var names = Set<String>()
        for service in services {
            names.insert(service.serviceName)
            for handler in service.methodHandlers() {
                registry[handler.descriptor.path] = handler
            }
        }
        self.registry = registry
        self.services = names
        self.logger = logger
    }

    /// The bound port (useful with port 0).
    public var port: Int { state.withLock { $0.port } }

    /// Number of open connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }
    /// The connections open from one address (what `maxConnectionsPerPeer` limits).
    package func connectionCount(from host: String) -> Int { state.withLock { $0.connectionsPerPeer[host, default: 0] } }

    /// Every call answered so far, by method and code, with durations: closed connections' totals
    /// plus a copy from each open connection, taken on its own queue (nothing is locked per call).
    public func callStats(_ done: @escaping @Sendable (RPCCallStats) -> Void) {
        let (closed, open) = state.withLock { ($0.closedStats, Array($0.connections.values)) }
        let group = DispatchGroup()
        let collected = Mutex(closed)
        for connection in open {
            group.enter()
            connection.callStats { stats in
                collected.withLock { $0.merge(stats) }
                group.leave()
            }
        }
        group.notify(queue: .global()) { done(collected.withLock { $0 }) }
    }

    /// Binds, listens and starts accepting.
    public func start() throws {
        // Certificates are loaded and checked before the port opens: a bad
        // file fails the start, not every handshake.
        var tls: TLSContext?
        if let settings = configuration.tls { tls = try TLSContext.server(settings) }
        let fd = try Socket.listen(host: configuration.host, port: configuration.port)
        let port = Socket.localPort(fd)
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        source.setEventHandler { [weak self] in self?.acceptReady(fd) }
        source.setCancelHandler { close(fd) }
        state.withLock {
            $0.listenFD = fd
            $0.port = port
            $0.acceptSource = SourceBox(source: source)
            $0.tls = tls
            $0.phase = .running
        }
        source.resume()
        logger.info("listening", metadata: ["address": "\(configuration.host):\(port)", "tls": "\(tls == nil ? "off" : configuration.tls?.clientCAPath == nil ? "on" : "on, client certificates required")"])
    }

    private func acceptReady(_ listenFD: Int32) {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK {
                    logger.warning("accept failed", metadata: ["errno": "\(errno)"])
                }
                return
            }
            do {
                try Socket.setNonBlocking(fd)
            } catch {
                close(fd)
                continue
            }
            Socket.setNoDelay(fd)
            let peer = Socket.peerAddress(fd)
            let admitted: Result<ServerConnection, Refusal> = state.withLock { s in
                guard s.phase == .running else { return .failure(.shuttingDown) }
                guard s.connections.count < configuration.maxConnections else { return .failure(.total) }
                let fromPeer = s.connectionsPerPeer[peer.host, default: 0]
                guard fromPeer < configuration.maxConnectionsPerPeer else { return .failure(.perPeer) }
                s.connectionsPerPeer[peer.host] = fromPeer + 1
                s.nextConnectionID += 1
                let c = ServerConnection(fd: fd, id: s.nextConnectionID, peer: peer, server: self, tls: s.tls)
                s.connections[ObjectIdentifier(c)] = c
                return .success(c)
            }
            switch admitted {
            case .success(let connection): connection.start()
            case .failure(let refusal): refuse(fd, refusal, peer: peer)
            }
        }
    }

    private enum Refusal: Error { case shuttingDown, total, perPeer }

    /// Over a connection limit: preface + go-away, then close.
    private func refuse(_ fd: Int32, _ refusal: Refusal, peer: Socket.PeerAddress) {
        var out = Preface.bytes
        let reason = switch refusal {
        case .shuttingDown: "server is shutting down"
        case .total: "too many connections (limit \(configuration.maxConnections))"
        case .perPeer: "too many connections from \(peer.host) (limit \(configuration.maxConnectionsPerPeer) per address)"
        }
        Wire.appendGoAway(lastCallID: 0, code: refusal == .shuttingDown ? .unavailable : .resourceExhausted, reason: reason, to: &out)
        _ = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Closing with the client's preface unread would reset the connection
        // and could discard the go-away before the client reads it: half-close,
        // discard what arrives for a moment, then close.
        shutdown(fd, Int32(SHUT_WR))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
            var sink = [UInt8](repeating: 0, count: 4096)
            while recv(fd, &sink, sink.count, 0) > 0 {}
            close(fd)
        }
        logger.notice("refused a connection", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
    }

    package func connectionClosed(_ c: ServerConnection, stats: RPCCallStats = RPCCallStats()) {
        let done = state.withLock { s -> Bool in
            s.closedStats.merge(stats)
            if s.connections.removeValue(forKey: ObjectIdentifier(c)) != nil {
                let left = s.connectionsPerPeer[c.peerHost, default: 1] - 1
                s.connectionsPerPeer[c.peerHost] = left > 0 ? left : nil
            }
            if s.phase == .draining && s.connections.isEmpty {
                s.phase = .stopped
                return true
            }
            return false
        }
        if done { markStopped() }
    }

    private func markStopped() {
        stopped.signal()
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.stopWaiters = [] }
            return s.stopWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Stops accepting, tells every connection to go away, lets in-flight
    /// calls finish within the grace period, then closes what is left.
    public func beginGracefulShutdown() {
        let (connections, source, done) = state.withLock { s -> ([ServerConnection], SourceBox?, Bool) in
            guard s.phase == .running || s.phase == .idle else { return ([], nil, false) }
            let source = s.acceptSource
            s.acceptSource = nil
            if s.connections.isEmpty {
                s.phase = .stopped
                return ([], source, true)
            }
            s.phase = .draining
            return (Array(s.connections.values), source, false)
        }
        source?.source.cancel()
        logger.info("graceful shutdown", metadata: ["connections": "\(connections.count)"])
        for c in connections { c.drain(reason: "server is shutting down") }
        if done {
            markStopped()
            return
        }
        let grace = configuration.shutdownGraceSeconds
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) { [self] in
            let left = state.withLock { Array($0.connections.values) }
            for c in left { c.forceClose(reason: "shutdown grace period of \(grace) s elapsed") }
        }
    }

    /// Blocks until the server has stopped (after ``beginGracefulShutdown()``).
    public func waitUntilStopped() {
        stopped.wait()
        stopped.signal()
    }

    /// Suspends until the server has stopped (without parking a thread).
    public func stopped() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let already = state.withLock { s -> Bool in
                if s.phase == .stopped { return true }
                s.stopWaiters.append(c)
                return false
            }
            if already { c.resume() }
        }
    }
}
