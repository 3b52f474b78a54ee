import Dispatch
public import Logging
public import RPC
import SessionAPI
#if canImport(Glibc)
import Glibc
#endif

/// Everything `sessiond` runs, assembled from its options: the RPC server
/// and the services it hosts.
public final class SessionDaemon: Sendable {
    /// The daemon's settings (flags and environment variables map onto these).
    public struct Options: Sendable {
        public var server = RPCServerConfiguration()
        public var dataDirectory = "./sessiond-data"
        public var hostTestService = true

        public init() {}
    }

    public let options: Options
    public let server: RPCServer
    public let health: HealthProvider
    private let logger: Logger

    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let health = HealthProvider(services: [GrpcTesting.TestService.serviceName])
        var services: [any RPCService] = [health]
        if options.hostTestService { services.append(TestServiceProvider()) }
        self.health = health
        self.server = RPCServer(configuration: options.server, services: services, logger: logger)
    }

    /// Binds and starts serving.
    public func start() throws {
        try server.start()
    }

    /// Stops accepting, reports NOT_SERVING, drains calls within the grace period.
    public func beginShutdown() {
        health.enterShutdown()
        server.beginGracefulShutdown()
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    public func runUntilSignalled() {
        signal(SIGPIPE, SIG_IGN)
        let signalQueue = DispatchQueue(label: "sessiond.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            source.setEventHandler { [self] in
                logger.info("signal received; shutting down gracefully", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
                beginShutdown()
            }
            source.resume()
            sources.append(source)
        }
        server.waitUntilStopped()
        for s in sources { s.cancel() }
        logger.info("stopped")
    }
}
