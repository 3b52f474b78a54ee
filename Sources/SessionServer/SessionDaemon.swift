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
        /// An admin token to accept (created on first start if not stored yet).
        public var bootstrapAdminToken: String?
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
    }

    public let options: Options
    public let server: RPCServer
    public let health: HealthProvider
    private let journaled = Mutex<JournaledSQLiteStore?>(nil)
    public let backend: SessionBackend
    public let sweeper: TimerSweeper
    private let gate: GatedStore
    private let logger: Logger
    /// PostgreSQL: whether this instance serves calls or passes them to the partition's owner.
    private let routing = PartitionRouting()
    private let partitionJournal = Mutex<PostgresPartitionJournal?>(nil)
    private let standbyTimer = Mutex<TimerBox?>(nil)
    /// Dispatch sources are thread-safe; Swift does not mark them Sendable yet.
    private struct TimerBox: @unchecked Sendable { let timer: any DispatchSourceTimer }
    private let exitCode = Atomic<Int32>(0)
    private let standbyTicks = Atomic<Int>(0)
    private let standbyFailing = Atomic<Bool>(false)
    /// 0 after a normal stop; 75 (EX_TEMPFAIL) after this instance lost the partition it owned.
    public var exitStatus: Int32 { exitCode.load(ordering: .acquiring) }

    /// Assembles the daemon without touching the network or the data
    /// directory: `start()` binds first, then opens the store.
    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let health = HealthProvider(services: [
            GrpcTesting.TestService.serviceName, SessionsV1.SessionService.serviceName, SessionsV1.RepService.serviceName,
            SessionsV1.ChannelService.serviceName, SessionsV1.PermissionService.serviceName, SessionsV1.EventService.serviceName,
            SessionsV1.TokenService.serviceName, SessionsV1.ClockService.serviceName,
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
            // Only the partition's owner serves the domain; the others pass calls to it.
            let routing = self.routing
            routing.startStandby()
            services = services.map { service in
                service is HealthProvider ? service : RPCForwardingService(service, forwardTo: { routing.decision() })
            }
        }
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
            if let sqlite = store as? SQLiteStore {
                // The embedded store runs behind a state owner: memory answers, the store is its journal.
                let backend = self.backend
                let logger = self.logger
                // Batches are durable in the journal files; the tables follow in the background.
                let journaled = JournaledSQLiteStore(store: sqlite, directory: options.dataDirectory, syncs: options.synchronousCommits)
                self.journaled.withLock { $0 = journaled }
                let gate = self.gate
                journaled.onFailure { error in
                    // A damaged database closes the gate (NOT_SERVING); any other failure is logged.
                    if StoreErrorKind.of(error) != .damaged { logger.error("the journal failed; writes are refused until a restart", metadata: ["error": "\(error)"]) }
                    _ = gate.failure(error)
                }
                let owner = try PartitionOwner(
                    journal: GatedJournal(journaled, gate: gate), now: { backend.clock.now() },
                    onDurable: { batch in backend.hub.publish(batch.events) },
                    onTimerError: { error in logger.warning("timer failed", metadata: ["error": "\(error)"]) })
                backend.attach(owner: owner)
            } else if let postgres = store as? PostgresStore {
                try startPartition(postgres)
            }
            try bootstrapAdmin(store: store)
            try writeMarkerIfMissing()
        } catch {
            server.beginGracefulShutdown()
            server.waitUntilStopped()
            if let e = error as? SessionDaemonStartupError { throw e }
            throw Self.classify(error, dataDirectory: options.dataDirectory, postgres: options.storeURL?.hasPrefix("postgres") == true)
        }
        for name in health.serviceNames { health.setStatus(.serving, for: name) }
        if backend.owner == nil && !options.usesPostgres { sweeper.start() }  // an owner fires its own timers
    }

    // MARK: - PostgreSQL: owner or standby

    /// Takes the partition if no other instance holds it, else stands by: forwards calls to
    /// the owner and tries again every 100 ms.
    private func startPartition(_ postgres: PostgresStore) throws {
        let journal = try PostgresPartitionJournal(store: postgres, url: options.storeURL ?? "", lease: .milliseconds(options.partitionLeaseMillis))
        partitionJournal.withLock { $0 = journal }
        journal.onLost { [weak self] reason in self?.partitionLost(reason) }
        if try journal.tryAcquire() {
            try becomeOwner(journal)
            return
        }
        logger.info("another instance owns the partition: standing by, forwarding calls to it")
        try? routing.point(to: journal.ownerAddress(), tls: forwardingTLS)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "sessiond.standby"))
        // Tries often (one statement on a kept connection): a killed owner's lock frees the
        // moment its socket closes, and the standby should not leave it unowned for long.
        timer.schedule(deadline: .now() + Self.standbyTryInterval, repeating: Self.standbyTryInterval, leeway: .milliseconds(20))
        timer.setEventHandler { [weak self] in self?.standbyTick(journal) }
        standbyTimer.withLock { $0 = TimerBox(timer: timer) }
        timer.resume()
    }

    static let standbyTryInterval: DispatchTimeInterval = .milliseconds(100)
    /// The owner's address is read again every this many tries (and whenever none is known).
    static let standbyAddressEvery = 10

    private func standbyTick(_ journal: PostgresPartitionJournal) {
        guard backend.owner == nil, !routing.isStopping else { return }
        let tick = standbyTicks.wrappingAdd(1, ordering: .relaxed).oldValue
        do {
            if try journal.tryAcquire() {
                standbyTimer.withLock { $0?.timer.cancel(); $0 = nil }
                try becomeOwner(journal)
            } else if !routing.hasOwnerAddress || tick % Self.standbyAddressEvery == 0 {
                try routing.point(to: journal.ownerAddress(), tls: forwardingTLS)
            }
            if standbyFailing.exchange(false, ordering: .relaxed) { logger.info("standby: the database answers again") }
        } catch {
            // Said once per outage, not ten times a second.
            if !standbyFailing.exchange(true, ordering: .relaxed) {
                logger.warning("standby: cannot reach the database or load the partition", metadata: ["error": "\(error)"])
            }
            if journal.isOwner { partitionLost("loading the partition failed: \(error)") }
        }
    }

    /// Loads the partition from the database (everything every earlier owner committed), serves
    /// it from memory and tells the other instances where.
    private func becomeOwner(_ journal: PostgresPartitionJournal) throws {
        let started = monotonicNanos()
        try backend.clock.loadPersistedState(from: gate)
        // Advertised first: a later owner's reconnection sees that this one took over.
        let address = options.advertiseAddress ?? Self.advertised(host: options.server.host, port: server.port)
        try journal.advertise(address: address, now: Int64(Date().timeIntervalSince1970 * 1000))
        let backend = self.backend
        let logger = self.logger
        let owner = try PartitionOwner(
            journal: GatedJournal(journal, gate: gate), now: { backend.clock.now() },
            onDurable: { batch in backend.hub.publish(batch.events) },
            onTimerError: { error in logger.warning("timer failed", metadata: ["error": "\(error)"]) })
        backend.attach(owner: owner)
        routing.becomeOwner()
        logger.info("owning the partition", metadata: [
            "advertised": "\(address)", "load_ms": "\((monotonicNanos() - started) / 1_000_000)",
        ])
    }

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

    /// The partition's lock went with its connection: another instance may own it now, so this
    /// one must not write again. Its calls are refused; it stops and exits 75 (a supervisor
    /// restarts it, as a standby).
    private func partitionLost(_ reason: String) {
        guard exitCode.compareExchange(expected: 0, desired: 75, ordering: .acquiringAndReleasing).exchanged else { return }
        logger.critical("lost the partition: refusing writes and stopping (exit 75)", metadata: ["reason": "\(reason)"])
        routing.refuseAll("this instance lost the partition; retry (another instance serves it)")
        beginShutdown()
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
            let aside = JournaledSQLiteStore.setAsideJournal(in: options.dataDirectory)
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

    /// Makes sure an admin can get in: accepts the configured bootstrap token,
    /// or on first start generates one into `<data-dir>/admin-token` (0600,
    /// written before its hash is stored). An existing admin-token file is
    /// never overwritten: its secret is stored again if the store lost it.
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
        let path = options.adminTokenPath
        let secret: String
        if let existing = try? String(contentsOfFile: path, encoding: .utf8),
           case let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty {
            secret = trimmed
            logger.notice("no admin token in the store: stored the one in the existing file again", metadata: ["file": "\(path)"])
        } else {
            secret = TokenAuthenticator.newSecret()
            try Self.writeOwnerOnlyFile(path, contents: secret + "\n")
            logger.notice("no admin token existed: created one", metadata: ["file": "\(path)"])
        }
        let hash = TokenAuthenticator.hash(secret: secret)
        if try store.token(hash: hash) == nil {
            try store.insertToken(APIToken(hash: hash, role: .admin, name: "bootstrap-admin", createdAt: now))
        }
    }

    /// Ends event watches (clients reconnect with their cursor), reports
    /// NOT_SERVING, stops accepting and drains calls within the grace period.
    public func beginShutdown() {
        routing.stopping()
        standbyTimer.withLock { $0?.timer.cancel(); $0 = nil }
        backend.hub.endAll()
        health.enterShutdown()
        server.beginGracefulShutdown()
    }

    /// Graceful shutdown, returning once every connection has closed.
    public func shutdown() async {
        beginShutdown()
        await server.stopped()
        sweeper.stop()
        backend.owner?.stop()
        closeStore()
    }

    /// After the last call: copies the WAL into the database file, so that
    /// `sessions.sqlite` alone holds everything after a clean stop.
    private func closeStore() {
        // The next owner takes the partition at once instead of after the lease.
        partitionJournal.withLock { $0 }?.release()
        guard let sqlite = gate.underlying as? SQLiteStore else { return }
        if let journaled = journaled.withLock({ $0 }) {
            // Everything the journal holds goes to the tables: after a clean stop the database alone holds it all.
            do { try journaled.flush() } catch {
                logger.warning("writing the journal to the tables at shutdown failed; it is replayed at the next start", metadata: ["error": "\(error)"])
            }
        }
        do {
            try sqlite.checkpoint()
        } catch {
            logger.warning("WAL checkpoint at shutdown failed", metadata: ["error": "\(error)"])
        }
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

/// Whether calls are served here or passed to the partition's owner (PostgreSQL). Read by every
/// call: an atomic flag; the lock is taken only while this instance is not the owner.
final class PartitionRouting: Sendable {
    private let forwarding = Atomic<Bool>(false)
    private let stoppingFlag = Atomic<Bool>(false)
    private let target = Mutex<Target>(Target())
    private let turn = Atomic<Int>(0)
    /// Connections to the owner: calls take them in turn, so that the owner's per-connection
    /// limit (`--max-concurrent-calls`, per connection) caps a standby at this many times it, not once.
    static let connectionsToOwner = 8

    private struct Target {
        var address: String?
        var channels: [RPCClientChannel] = []
        var refusal: String?
    }

    func decision() -> RPCForwardDecision {
        guard forwarding.load(ordering: .acquiring) else { return .serveLocally }
        let n = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        return target.withLock { t in
            if let refusal = t.refusal { return .refuse(RPCError(.unavailable, refusal)) }
            if !t.channels.isEmpty { return .forward(t.channels[Int(UInt(bitPattern: n) % UInt(t.channels.count))]) }
            return .refuse(RPCError(.unavailable, "no instance owns the partition yet; retry shortly"))
        }
    }

    var isStopping: Bool { stoppingFlag.load(ordering: .acquiring) }

    var hasOwnerAddress: Bool { target.withLock { $0.address != nil } }

    func startStandby() { forwarding.store(true, ordering: .releasing) }

    func becomeOwner() {
        let old = target.withLock { t -> [RPCClientChannel] in
            defer { t = Target() }
            return t.channels
        }
        forwarding.store(false, ordering: .releasing)
        for channel in old { channel.close() }
    }

    /// Forwards to `address` from now on (new channels when it changed).
    func point(to address: String?, tls: RPCClientTLS?) throws {
        guard let address, target.withLock({ $0.address != address }) else { return }
        var configuration = RPCClientConfiguration()
        configuration.tls = tls
        configuration.connectTimeout = .seconds(2)
        configuration.maxBackoff = .milliseconds(500)
        let channels = try (0..<Self.connectionsToOwner).map { _ in try RPCClientChannel(address: address, configuration: configuration) }
        let old = target.withLock { t -> [RPCClientChannel] in
            guard t.address != address else { return channels }
            defer { t.address = address; t.channels = channels }
            return t.channels
        }
        for channel in old { channel.close() }
    }

    func refuseAll(_ reason: String) {
        target.withLock { $0.refusal = reason }
        forwarding.store(true, ordering: .releasing)
    }

    func stopping() { stoppingFlag.store(true, ordering: .releasing) }
}
