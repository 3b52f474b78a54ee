import Dispatch
import Foundation
public import Logging
public import RPC
import SessionAPI
import SessionCore
import SessionStorage
#if canImport(Glibc)
import Glibc
#endif

/// Everything `sessiond` runs, assembled from its options: the store, the
/// clock, the timer sweeper, and the RPC server with its services.
public final class SessionDaemon: Sendable {
    /// The daemon's settings (flags and environment variables map onto these).
    public struct Options: Sendable {
        public var server = RPCServerConfiguration()
        /// Holds the SQLite database (`sessions.sqlite`) and the generated admin token.
        public var dataDirectory = "./sessiond-data"
        /// `nil` or `sqlite`: the embedded SQLite file in the data directory;
        /// `postgres://user@host:port/db`: a PostgreSQL database that several
        /// instances may share.
        public var storeURL: String?
        public var hostTestService = true
        /// Enables `ClockService/AdvanceClock`.
        public var testClock = false
        /// An admin token to accept (created on first start if not stored yet).
        public var bootstrapAdminToken: String?
        /// How often due timers are looked for.
        public var sweepIntervalMillis = 1000
        /// `false` trades durability on power loss for speed (fsync per commit).
        public var synchronousCommits = true
        /// Tests only: pins the clock's wall-time base (Unix ms) so that a
        /// restarted daemon can find timers overdue. `nil`: the real clock.
        public var fixedClockStart: Int64?

        public init() {}

        var databasePath: String { (dataDirectory as NSString).appendingPathComponent("sessions.sqlite") }
        var adminTokenPath: String { (dataDirectory as NSString).appendingPathComponent("admin-token") }
    }

    public let options: Options
    public let server: RPCServer
    public let health: HealthProvider
    public let backend: SessionBackend
    public let sweeper: TimerSweeper
    private let logger: Logger

    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
        let store = try Self.openStore(options)
        let backend = SessionBackend(store: store, clock: try ServerClock(testClock: options.testClock, fixedStart: options.fixedClockStart.map { Timestamp(millisecondsSinceEpoch: $0) }, store: store), logger: logger)
        let sweeper = TimerSweeper(backend: backend, intervalMillis: options.sweepIntervalMillis)
        let health = HealthProvider(services: [
            GrpcTesting.TestService.serviceName, SessionsV1.SessionService.serviceName, SessionsV1.RepService.serviceName,
            SessionsV1.ChannelService.serviceName, SessionsV1.PermissionService.serviceName, SessionsV1.EventService.serviceName,
            SessionsV1.TokenService.serviceName, SessionsV1.ClockService.serviceName,
        ])
        var services: [any RPCService] = [
            health,
            SessionServiceProvider(backend: backend), RepServiceProvider(backend: backend),
            ChannelServiceProvider(backend: backend), PermissionServiceProvider(backend: backend),
            EventServiceProvider(backend: backend), TokenServiceProvider(backend: backend),
            ClockServiceProvider(backend: backend, sweeper: sweeper),
        ]
        if options.hostTestService { services.append(TestServiceProvider()) }
        self.health = health
        self.backend = backend
        self.sweeper = sweeper
        self.server = RPCServer(configuration: options.server, services: services, logger: logger)
        try bootstrapAdmin(store: store)
    }

    private static func openStore(_ options: Options) throws -> any SessionStore {
        switch options.storeURL {
        case nil, "sqlite", "":
            var storeOptions = SQLiteStore.Options()
            if !options.synchronousCommits { storeOptions.durability = .processCrash }
            return try SQLiteStore(path: options.databasePath, options: storeOptions)
        case let url? where url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"):
            var storeOptions = PostgresStore.Options()
            storeOptions.synchronousCommit = options.synchronousCommits
            return try PostgresStore(url: url, options: storeOptions)
        case let other?:
            throw SessionDaemonError("store '\(other)' is neither 'sqlite' nor a postgres:// URL")
        }
    }

    /// Makes sure an admin can get in: accepts the configured bootstrap token,
    /// or on first start generates one into `<data-dir>/admin-token` (0600).
    private func bootstrapAdmin(store: any SessionStore) throws {
        let now = backend.clock.now()
        if let secret = options.bootstrapAdminToken, !secret.isEmpty {
            let hash = TokenAuthenticator.hash(secret: secret)
            if try store.token(hash: hash) == nil {
                try store.insertToken(APIToken(hash: hash, role: .admin, name: "bootstrap-admin", createdAt: now))
                logger.info("bootstrap admin token accepted")
            }
            return
        }
        if try store.listTokens().contains(where: { $0.role == .admin && $0.isActive }) { return }
        let secret = TokenAuthenticator.newSecret()
        try store.insertToken(APIToken(hash: TokenAuthenticator.hash(secret: secret), role: .admin, name: "bootstrap-admin", createdAt: now))
        let path = options.adminTokenPath
        _ = FileManager.default.createFile(atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        logger.notice("no admin token existed: created one", metadata: ["file": "\(path)"])
    }

    /// Binds, starts serving and sweeping timers (overdue ones fire at once).
    public func start() throws {
        try server.start()
        sweeper.start()
    }

    /// Stops accepting, reports NOT_SERVING, drains calls within the grace period.
    public func beginShutdown() {
        health.enterShutdown()
        server.beginGracefulShutdown()
    }

    /// Graceful shutdown, returning once every connection has closed.
    public func shutdown() async {
        beginShutdown()
        await server.stopped()
        sweeper.stop()
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
        sweeper.stop()
        for s in sources { s.cancel() }
        logger.info("stopped")
    }
}

/// A daemon configuration that cannot work.
public struct SessionDaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
