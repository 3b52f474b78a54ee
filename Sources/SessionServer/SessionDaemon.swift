import Dispatch
import Foundation
public import Logging
public import RPC
import SessionAPI
import SessionCore
import SessionStorage
import SessionState
import Synchronization
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
        /// Hosts `grpc.testing.TestService` (sessionctl echo, benchmarks).
        public var hostTestService = false
        /// Enables `ClockService/AdvanceClock`.
        public var testClock = false
        /// An admin token of the default tenant to accept (created on first start if not stored yet).
        public var bootstrapAdminToken: String?
        /// An operator token to accept (tenants are created with one).
        public var bootstrapOperatorToken: String?
        /// How often due timers are looked for.
        public var sweepIntervalMillis = 1000
        /// `false` trades durability on power loss for speed (fsync per commit).
        public var synchronousCommits = true
        /// Tests only: pins the clock's wall-time base (Unix ms) so that a
        /// restarted daemon can find timers overdue. `nil`: the real clock.
        public var fixedClockStart: Int64?
        /// Start even though the data directory held data and the database is
        /// now missing, empty or without schema (begins with an empty store).
        public var allowEmptyStore = false
        /// PostgreSQL: how long an owner that stopped answering keeps the partition before
        /// another instance takes it over (PostgreSQL ends its silent session after this).
        public var partitionLeaseMillis: Int64 = 10_000
        /// PostgreSQL: the address other instances forward calls to while this one owns the
        /// partition; nil: the listen address with the bound port (0.0.0.0 and :: as loopback).
        public var advertiseAddress: String?

        var usesPostgres: Bool { storeURL?.hasPrefix("postgres://") == true || storeURL?.hasPrefix("postgresql://") == true }

        public init() {}

        var databasePath: String { (dataDirectory as NSString).appendingPathComponent("sessions.sqlite") }
        var adminTokenPath: String { (dataDirectory as NSString).appendingPathComponent("admin-token") }
        var operatorTokenPath: String { (dataDirectory as NSString).appendingPathComponent("operator-token") }
    }

    public let options: Options
    public let server: RPCServer
    public let health: HealthProvider
    private let sqliteTenants = Mutex<SQLiteTenants?>(nil)
    private let postgresTenants = Mutex<PostgresTenants?>(nil)
    private let tenantHost = TenantHostBox()
    public let backend: SessionBackend
    public let sweeper: TimerSweeper
    private let gate: GatedStore
    private let logger: Logger
    /// PostgreSQL: where the calls of tenants this instance does not own go.
    private let routing = PartitionRouting()
    private let tenantTimer = Mutex<TimerBox?>(nil)
    /// Dispatch sources are thread-safe; Swift does not mark them Sendable yet.
    private struct TimerBox: @unchecked Sendable { let timer: any DispatchSourceTimer }

    /// Assembles the daemon without touching the network or the data
    /// directory: `start()` binds first, then opens the store.
    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let health = HealthProvider(services: [
            GrpcTesting.TestService.serviceName, SessionsV1.SessionService.serviceName, SessionsV1.RepService.serviceName,
            SessionsV1.ChannelService.serviceName, SessionsV1.PermissionService.serviceName, SessionsV1.EventService.serviceName,
            SessionsV1.TokenService.serviceName, SessionsV1.ClockService.serviceName, SessionsV1.TenantService.serviceName,
        ])
        health.enterShutdown()  // NOT_SERVING until the store is open
        let gate = GatedStore(onDamaged: { [logger] reason in
            logger.critical("the database is damaged: reporting NOT_SERVING, refusing calls", metadata: ["error": "\(reason)"])
            health.enterShutdown()
        })
        let backend = SessionBackend(store: gate, clock: ServerClock(testClock: options.testClock, fixedStart: options.fixedClockStart.map { Timestamp(millisecondsSinceEpoch: $0) }, store: gate), logger: logger)
        let sweeper = TimerSweeper(backend: backend, intervalMillis: options.sweepIntervalMillis)
        var services: [any RPCService] = [
            health,
            SessionServiceProvider(backend: backend), RepServiceProvider(backend: backend),
            ChannelServiceProvider(backend: backend), PermissionServiceProvider(backend: backend),
            EventServiceProvider(backend: backend), TokenServiceProvider(backend: backend),
            ClockServiceProvider(backend: backend, sweeper: sweeper),
        ]
        if options.usesPostgres {
            // Only a tenant's owner serves it; the others pass its calls to the owner. A call whose
            // token names no tenant served elsewhere (none, a bad one, an operator's) is answered here.
            let routing = self.routing
            let decide: RPCForwardTarget = { metadata in
                guard let (principal, served) = try? backend.authenticated(metadata), let tenant = principal.token.tenantId, served == nil
                else { return .serveLocally }
                return routing.decision(tenant: tenant)
            }
            services = services.map { service in
                service is HealthProvider ? service : RPCForwardingService(service, forwardTo: decide)
            }
        }
        // The registry is the main store's: any instance answers it.
        services.append(TenantServiceProvider(backend: backend, host: tenantHost))
        if options.hostTestService { services.append(TestServiceProvider()) }
        self.gate = gate
        self.health = health
        self.backend = backend
        self.sweeper = sweeper
        let probes = HTTPProbes(health: health, backend: backend)
        var configuration = options.server
        configuration.httpHandler = probes.handler
        self.server = RPCServer(configuration: configuration, services: services, logger: logger)
        probes.attach(server)
    }

    /// The configured listen address, as an operator wrote it.
    var listenAddress: String {
        let host = options.server.host.contains(":") ? "[\(options.server.host)]" : options.server.host
        return "\(host):\(options.server.port)"
    }

    /// Binds the port first (nothing is written before), then creates the
    /// data directory, opens and checks the store, makes sure an admin can get
    /// in, reports SERVING and starts sweeping timers (overdue ones fire at once).
    public func start() throws(SessionDaemonStartupError) {
        do {
            try server.start()
        } catch let error as TLSError {
            throw SessionDaemonStartupError(.usage, error.message)
        } catch {
            let reason = (error as? Socket.Failure).map { String(cString: strerror($0.errno)).lowercased() } ?? "\(error)"
            throw SessionDaemonStartupError(.cannotListen, "cannot listen on \(listenAddress): \(reason)")
        }
        do {
            let store = try openStore()
            try backend.clock.loadPersistedState(from: store)  // before any call can read the clock
            gate.attach(store)
            let registered = try registeredTenants(store)
            if let sqlite = store as? SQLiteStore {
                // Every tenant runs behind a state owner of its own: memory answers, its journal files
                // make batches durable, its tables follow in the background.
                var storeOptions = SQLiteStore.Options()
                if !options.synchronousCommits { storeOptions.durability = .processCrash }
                let tenants = SQLiteTenants(
                    dataDirectory: options.dataDirectory, main: sqlite, storeOptions: storeOptions, syncs: options.synchronousCommits,
                    allowEmpty: options.allowEmptyStore, backend: backend, gate: gate, logger: logger)
                sqliteTenants.withLock { $0 = tenants }
                tenantHost.set(tenants)
                try tenants.serveRegistered(registered)
            } else if let postgres = store as? PostgresStore {
                try startTenants(postgres, registered)
            }
            try bootstrapToken(store: store, role: .admin)
            try bootstrapToken(store: store, role: .operator)
            try writeMarkerIfMissing()
        } catch {
            server.beginGracefulShutdown()
            server.waitUntilStopped()
            if let e = error as? SessionDaemonStartupError { throw e }
            throw Self.classify(error, dataDirectory: options.dataDirectory, postgres: options.storeURL?.hasPrefix("postgres") == true)
        }
        for name in health.serviceNames { health.setStatus(.serving, for: name) }
    }

    /// The registry, with the default tenant in it from the first start (and after an upgrade).
    private func registeredTenants(_ store: any SessionStore) throws -> [TenantRecord] {
        let tenants = try store.tenants()
        guard !tenants.contains(where: { $0.id == APIToken.defaultTenant }) else { return tenants }
        do {
            try store.insertTenant(TenantRecord(id: APIToken.defaultTenant, displayName: "Default tenant", createdAt: backend.clock.now()))
        } catch let error as DomainError where error.code == .alreadyExists {
            // Another instance registered it first.
        }
        return try store.tenants()
    }

    // MARK: - PostgreSQL: tenants owned here, the others forwarded

    /// Takes every registered tenant that no other instance holds, forwards the others' calls to
    /// their owners, and tries again every 100 ms (reading the registry again every second).
    private func startTenants(_ postgres: PostgresStore, _ registered: [TenantRecord]) throws {
        var storeOptions = PostgresStore.Options()
        storeOptions.synchronousCommit = options.synchronousCommits
        let (options, server) = (self.options, self.server)
        let tenants = PostgresTenants(
            url: options.storeURL ?? "", main: postgres, storeOptions: storeOptions, lease: .milliseconds(options.partitionLeaseMillis),
            backend: backend, gate: gate, routing: routing, logger: logger, forwardingTLS: forwardingTLS,
            advertisedAddress: { options.advertiseAddress ?? Self.advertised(host: options.server.host, port: server.port) })
        postgresTenants.withLock { $0 = tenants }
        tenantHost.set(tenants)
        try tenants.serveRegistered(registered)
        if backend.partitions.isEmpty { logger.info("other instances own every tenant: forwarding their calls, standing by") }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "sessiond.tenants"))
        // Tries often (one statement per unowned tenant on a kept connection): a killed owner's
        // lock frees the moment its socket closes, and its tenants should not stay unowned for long.
        timer.schedule(deadline: .now() + Self.standbyTryInterval, repeating: Self.standbyTryInterval, leeway: .milliseconds(20))
        timer.setEventHandler { tenants.tick() }
        tenantTimer.withLock { $0 = TimerBox(timer: timer) }
        timer.resume()
    }

    static let standbyTryInterval: DispatchTimeInterval = .milliseconds(100)

    static func advertised(host: String, port: Int) -> String {
        switch host {
        case "0.0.0.0", "": return "127.0.0.1:\(port)"
        case "::": return "[::1]:\(port)"
        default: return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// Other instances are reached with TLS when this one serves TLS, trusting its own
    /// certificate file (instances share a certificate or its CA).
    private var forwardingTLS: RPCClientTLS? {
        options.server.tls.map { RPCClientTLS(caPath: $0.certificateChainPath) }
    }

    private static func classify(_ error: any Error, dataDirectory: String, postgres: Bool) -> SessionDaemonStartupError {
        switch StoreErrorKind.of(error) {
        case .unavailable where postgres:
            return SessionDaemonStartupError(.storeUnreachable, "cannot reach the store: \(error)")
        case .damaged:
            return SessionDaemonStartupError(.dataRefused, "the database in \(dataDirectory) is damaged: \(error)")
        case .notWritable, .unavailable:
            return SessionDaemonStartupError(.dataDirectoryUnwritable, "cannot write the data directory \(dataDirectory): \(error)")
        case .other:
            if error is CocoaError || error is POSIXError {
                return SessionDaemonStartupError(.dataDirectoryUnwritable, "cannot write the data directory \(dataDirectory): \(error.localizedDescription)")
            }
            return SessionDaemonStartupError(.dataRefused, "cannot open the store in \(dataDirectory): \(error)")
        }
    }

    var markerPath: String { (options.dataDirectory as NSString).appendingPathComponent("sessiond.marker") }

    /// Creates the data directory (0700) and opens the store. For SQLite, a
    /// data directory that held data before (a marker or an admin-token file)
    /// must still hold a sound database, unless `allowEmptyStore`.
    private func openStore() throws -> any SessionStore {
        try Self.makeDirectory(options.dataDirectory)
        switch options.storeURL {
        case nil, "sqlite", "":
            try checkExistingData()
            var storeOptions = SQLiteStore.Options()
            if !options.synchronousCommits { storeOptions.durability = .processCrash }
            return try SQLiteStore(path: options.databasePath, options: storeOptions)
        case let url? where url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"):
            var storeOptions = PostgresStore.Options()
            storeOptions.synchronousCommit = options.synchronousCommits
            return try PostgresStore(url: url, options: storeOptions)
        case let other?:
            throw SessionDaemonStartupError(.usage, "store '\(other)' is neither 'sqlite' nor a postgres:// URL")
        }
    }

    /// `mkdir -p` with mode 0700 for what it creates (the umask can only narrow it).
    static func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw SessionDaemonStartupError(.dataDirectoryUnwritable, "cannot create the data directory \(path): it exists and is not a directory")
            }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectory(parent) }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw SessionDaemonStartupError(
                .dataDirectoryUnwritable, "cannot create the data directory \(path): \(String(cString: strerror(errno)).lowercased())")
        }
    }

    private func checkExistingData() throws {
        let fm = FileManager.default
        let hadData = fm.fileExists(atPath: markerPath) || fm.fileExists(atPath: options.adminTokenPath)
        let state = SQLiteStore.inspect(path: options.databasePath)
        let problem: String?
        switch state {
        case .healthy: problem = nil
        case .missing: problem = hadData ? "is missing" : nil
        case .empty: problem = hadData ? "is empty (0 bytes)" : nil
        case .noSchema: problem = hadData ? "has no schema" : nil
        case .damaged(let why): problem = "is damaged (\(why))"
        }
        guard let problem else { return }
        if case .damaged = state {
            throw SessionDaemonStartupError(
                .dataRefused,
                "refusing to start: \(options.databasePath) \(problem); restore it from a backup, or move it away and start with --allow-empty-store")
        }
        if options.allowEmptyStore {
            logger.warning("the database \(problem) but the data directory held data; starting empty (--allow-empty-store)", metadata: ["file": "\(options.databasePath)"])
            let aside = SQLiteTenants.journalDirectories(in: options.dataDirectory).flatMap { JournaledSQLiteStore.setAsideJournal(in: $0) }
            if !aside.isEmpty {
                logger.warning("the old database's journal files were set aside, not replayed", metadata: ["files": "\(aside.joined(separator: ", "))"])
            }
            return
        }
        throw SessionDaemonStartupError(
            .dataRefused,
            "refusing to start: \(options.databasePath) \(problem) but \(options.dataDirectory) held data before; restore the database, or start with --allow-empty-store to begin empty")
    }

    /// Records that this data directory holds data (for `checkExistingData`).
    private func writeMarkerIfMissing() throws {
        guard options.storeURL == nil || options.storeURL == "sqlite" || options.storeURL == "" else { return }
        guard !FileManager.default.fileExists(atPath: markerPath) else { return }
        try Self.writeOwnerOnlyFile(markerPath, contents: "sessiond data directory; do not delete (see sessiond --help, --allow-empty-store)\n")
    }

    /// Creates `path` 0600 from its first byte (O_CREAT|O_EXCL), writes, fsyncs.
    static func writeOwnerOnlyFile(_ path: String, contents: String) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// Makes sure an admin of the default tenant and an operator can get in: accepts the
    /// configured bootstrap token, or on first start generates one into `<data-dir>/admin-token`
    /// (`operator-token`), 0600, written before its hash is stored. An existing file is never
    /// overwritten: its secret is stored again if the store lost it.
    private func bootstrapToken(store: any SessionStore, role: APIToken.Role) throws {
        let now = backend.clock.now()
        let (configured, path, name) = role == .operator
            ? (options.bootstrapOperatorToken, options.operatorTokenPath, "bootstrap-operator")
            : (options.bootstrapAdminToken, options.adminTokenPath, "bootstrap-admin")
        let tenant: String? = role == .operator ? nil : APIToken.defaultTenant
        if let secret = configured, !secret.isEmpty {
            let hash = TokenAuthenticator.hash(secret: secret)
            if try store.token(hash: hash) == nil {
                try store.insertToken(APIToken(hash: hash, role: role, tenantId: tenant, name: name, createdAt: now))
                logger.info("bootstrap \(role == .operator ? "operator" : "admin") token accepted")
            }
            return
        }
        if try store.listTokens().contains(where: { $0.role == role && $0.tenantId == tenant && $0.isActive }) { return }
        let secret: String
        if let existing = try? String(contentsOfFile: path, encoding: .utf8),
           case let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty {
            secret = trimmed
            logger.notice("no \(role.rawValue) token in the store: stored the one in the existing file again", metadata: ["file": "\(path)"])
        } else {
            secret = TokenAuthenticator.newSecret()
            try Self.writeOwnerOnlyFile(path, contents: secret + "\n")
            logger.notice("no \(role.rawValue) token existed: created one", metadata: ["file": "\(path)"])
        }
        let hash = TokenAuthenticator.hash(secret: secret)
        if try store.token(hash: hash) == nil {
            try store.insertToken(APIToken(hash: hash, role: role, tenantId: tenant, name: name, createdAt: now))
        }
    }

    /// Ends event watches (clients reconnect with their cursor), reports
    /// NOT_SERVING, stops accepting and drains calls within the grace period.
    public func beginShutdown() {
        routing.stopping()
        tenantTimer.withLock { $0?.timer.cancel(); $0 = nil }
        for partition in backend.partitions { partition.hub.endAll() }
        backend.hub.endAll()
        health.enterShutdown()
        server.beginGracefulShutdown()
    }

    /// Graceful shutdown, returning once every connection has closed.
    public func shutdown() async {
        beginShutdown()
        await server.stopped()
        sweeper.stop()
        closeStore()
    }

    /// After the last call: every tenant's partition stopped; on PostgreSQL each tenant given up
    /// at once (the next owner need not wait for the lease); on SQLite every journal written to
    /// its tables and every WAL copied into its database file, so that each `sessions.sqlite`
    /// alone holds everything after a clean stop.
    private func closeStore() {
        postgresTenants.withLock { $0 }?.releaseAll()
        sqliteTenants.withLock { $0 }?.closeAll()
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
        closeStore()
        for s in sources { s.cancel() }
        logger.info("stopped")
    }
}

/// Why `sessiond` could not start, with its exit status (sysexits.h).
public struct SessionDaemonStartupError: Error, CustomStringConvertible {
    public enum Kind: Int32, Sendable {
        /// EX_USAGE: a configuration that cannot work.
        case usage = 64
        /// EX_DATAERR: the data directory held data but the database is missing, empty or damaged.
        case dataRefused = 65
        /// EX_UNAVAILABLE: the listen address cannot be bound.
        case cannotListen = 69
        /// EX_CANTCREAT: the data directory or database cannot be created or written.
        case dataDirectoryUnwritable = 73
        /// EX_TEMPFAIL: the PostgreSQL store cannot be reached.
        case storeUnreachable = 75
    }

    public let kind: Kind
    public let description: String
    public var exitCode: Int32 { kind.rawValue }

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// A daemon configuration that cannot work.
public struct SessionDaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where calls of tenants this instance does not own go (PostgreSQL): each tenant's owner, as
/// it advertised itself, over connections shared by every tenant of that owner.
final class PartitionRouting: Sendable {
    private let stoppingFlag = Atomic<Bool>(false)
    private let state = Mutex<State>(State())
    private let turn = Atomic<Int>(0)
    /// Connections to each owner: calls take them in turn, so that the owner's per-connection
    /// limit (`--max-concurrent-calls`, per connection) caps a standby at this many times it, not once.
    static let connectionsToOwner = 8

    private struct State {
        var ownerOf: [String: String] = [:]
        var channels: [String: [RPCClientChannel]] = [:]
    }

    /// Where a call of `tenant` (not served here) goes.
    func decision(tenant: String) -> RPCForwardDecision {
        let n = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        return state.withLock { s in
            if let address = s.ownerOf[tenant], let channels = s.channels[address], !channels.isEmpty {
                return .forward(channels[Int(UInt(bitPattern: n) % UInt(channels.count))])
            }
            return .refuse(RPCError(.unavailable, "no instance owns tenant \(tenant) yet; retry shortly"))
        }
    }

    var isStopping: Bool { stoppingFlag.load(ordering: .acquiring) }

    func knowsOwner(of tenant: String) -> Bool { state.withLock { $0.ownerOf[tenant] != nil } }

    /// The tenant is served here now.
    func forget(tenant: String) { point(tenant: tenant, nil) }

    /// Forwards `tenant`'s calls to `address` from now on (nil: nowhere).
    func point(tenant: String, to address: String?, tls: RPCClientTLS?) throws {
        if let address, state.withLock({ $0.channels[address] == nil }) {
            var configuration = RPCClientConfiguration()
            configuration.tls = tls
            configuration.connectTimeout = .seconds(2)
            configuration.maxBackoff = .milliseconds(500)
            let channels = try (0..<Self.connectionsToOwner).map { _ in try RPCClientChannel(address: address, configuration: configuration) }
            let unused = state.withLock { s -> [RPCClientChannel] in
                if s.channels[address] != nil { return channels }
                s.channels[address] = channels
                return []
            }
            for channel in unused { channel.close() }
        }
        point(tenant: tenant, address)
    }

    private func point(tenant: String, _ address: String?) {
        let closing = state.withLock { s -> [RPCClientChannel] in
            s.ownerOf[tenant] = address
            // Connections to an instance that owns none of the tenants any more are closed.
            let used = Set(s.ownerOf.values)
            var closing: [RPCClientChannel] = []
            for (a, channels) in s.channels where !used.contains(a) {
                closing += channels
                s.channels[a] = nil
            }
            return closing
        }
        for channel in closing { channel.close() }
    }

    func stopping() { stoppingFlag.store(true, ordering: .releasing) }
}

/// The tenant host, set once the store is open (the tenant service exists before).
final class TenantHostBox: TenantHost {
    private let host = Mutex<(any TenantHost)?>(nil)

    func set(_ host: any TenantHost) { self.host.withLock { $0 = host } }

    private func current() throws -> any TenantHost {
        guard let host = host.withLock({ $0 }) else { throw GatedStore.NotReady(message: "sessiond is starting; retry shortly") }
        return host
    }

    func prepare(tenant id: String) throws { try current().prepare(tenant: id) }
    func serve(_ tenant: TenantRecord) throws { try current().serve(tenant) }
    func stop(tenant id: String) { try? current().stop(tenant: id) }
}
