import ArgumentParser
import BuildInfo
import Foundation
import Logging
import RPC
import SessionServer

/// `sessiond`: the messaging session lifecycle service.

struct SessiondCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessiond",
        abstract: "The messaging session lifecycle service (length-prefixed protobuf RPC over TCP).",
        discussion: """
            Exit status: 0 after a clean stop; 64 usage error; 65 data refused (the data \
            directory held data but its database is missing, empty or damaged: see \
            --allow-empty-store); 69 cannot listen (address in use, ...); 73 data directory \
            or database cannot be created or written; 75 store unreachable (PostgreSQL). \
            Start-up binds the listen address before it creates or opens anything in the \
            data directory.

            Every option can also be set with the environment variable named in its help; \
            a flag wins over the environment. Stop with SIGTERM or SIGINT: the server stops \
            accepting, tells clients to go away, and lets in-flight calls finish.

            `sessiond backup FILE [--data-dir DIR]` copies the embedded store while sessiond \
            runs (see `sessiond backup --help`).
            """,
        version: "sessiond \(BuildInfo.versionString)")

    @Option(help: "Address to listen on, HOST:PORT. [env: SESSIOND_LISTEN] (default: 127.0.0.1:7411)")
    var listen: String?

    @Option(help: "Directory for the embedded store. [env: SESSIOND_DATA_DIR] (default: ./sessiond-data)")
    var dataDir: String?

    @Option(help: "Where sessions live: 'sqlite' (a file in the data directory) or postgres://USER@HOST:PORT/DB (several instances may share it). [env: SESSIOND_STORE] (default: sqlite)")
    var store: String?

    @Option(help: "Largest frame in bytes. [env: SESSIOND_MAX_FRAME_BYTES] (default: 4194304)")
    var maxFrameBytes: Int?

    @Option(help: "Concurrent calls per connection. [env: SESSIOND_MAX_CONCURRENT_CALLS] (default: 1024)")
    var maxConcurrentCalls: Int?

    @Option(help: "Open connections. [env: SESSIOND_MAX_CONNECTIONS] (default: 4096)")
    var maxConnections: Int?

    @Option(help: "Request metadata bytes per call. [env: SESSIOND_MAX_METADATA_BYTES] (default: 16384)")
    var maxMetadataBytes: Int?

    @Option(help: "Seconds before an idle connection is closed. [env: SESSIOND_IDLE_TIMEOUT] (default: 300)")
    var idleTimeout: Double?

    @Option(help: "Seconds to finish the preface or a begun frame. [env: SESSIOND_FRAME_TIMEOUT] (default: 10)")
    var frameTimeout: Double?

    @Option(help: "Response bytes buffered per connection before reading pauses. [env: SESSIOND_MAX_BUFFERED_BYTES] (default: 8388608)")
    var maxBufferedBytes: Int?

    @Option(help: "Seconds in-flight calls get to finish at shutdown. [env: SESSIOND_SHUTDOWN_GRACE] (default: 10)")
    var shutdownGrace: Double?

    @Option(help: "trace, debug, info, notice, warning, error or critical. [env: SESSIOND_LOG_LEVEL] (default: info)")
    var logLevel: String?

    @Option(help: "text (one human-readable line per entry) or json (one JSON object per line). [env: SESSIOND_LOG_FORMAT] (default: text)")
    var logFormat: String?

    @Flag(help: "Let an admin advance the server's clock over the wire (ClockService/AdvanceClock), to try the 24-hour rules in seconds. Never in production. [env: SESSIOND_TEST_CLOCK=1]")
    var testClock = false

    @Option(help: ArgumentHelp("With --test-clock: start the clock at this Unix time in milliseconds and let it move only when advanced (for reproducible tests). [env: SESSIOND_TEST_CLOCK_START_MS]", visibility: .hidden))
    var testClockStartMs: Int64?

    @Option(help: "An admin bearer token to accept (stored hashed on first start). Without it, a first start writes a generated one to DATA_DIR/admin-token. [env: SESSIOND_ADMIN_TOKEN]")
    var adminToken: String?

    @Option(help: "Read the bootstrap admin token from this file. [env: SESSIOND_ADMIN_TOKEN_FILE]")
    var adminTokenFile: String?

    @Option(help: "An operator bearer token to accept (manages tenants; stored hashed). Without it, a first start writes a generated one to DATA_DIR/operator-token. [env: SESSIOND_OPERATOR_TOKEN]")
    var operatorToken: String?

    @Option(help: "Read the bootstrap operator token from this file. [env: SESSIOND_OPERATOR_TOKEN_FILE]")
    var operatorTokenFile: String?

    @Option(help: "PostgreSQL: milliseconds between sweeps for due timers (the embedded store fires each timer at its deadline). [env: SESSIOND_SWEEP_INTERVAL_MS] (default: 1000)")
    var sweepIntervalMs: Int?

    @Option(help: "full (every change fdatasynced before it is answered: survives power loss) or process-crash (survives kill -9 only). [env: SESSIOND_DURABILITY] (default: full)")
    var durability: String?

    @Flag(help: "Host grpc.testing.TestService (used by sessionctl echo and benchmarks); off by default. [env: SESSIOND_TEST_SERVICE=1]")
    var testService = false

    @Option(help: "Once listening and the store is open, write the bound port (useful with port 0) to this file, atomically. [env: SESSIOND_PORT_FILE]")
    var portFile: String?

    @Flag(help: "Start even though the data directory held data (sessiond.marker or admin-token) and its database is missing, empty or without schema: begins with an empty store. A damaged database is still refused. [env: SESSIOND_ALLOW_EMPTY_STORE=1]")
    var allowEmptyStore = false

    @Option(help: "Open connections from one peer address. [env: SESSIOND_MAX_CONNECTIONS_PER_PEER] (default: 256)")
    var maxConnectionsPerPeer: Int?

    @Option(help: "Seconds a new connection gets to start its first call. [env: SESSIOND_FIRST_CALL_TIMEOUT] (default: 10)")
    var firstCallTimeout: Double?

    @Option(help: "Bytes per second a peer must keep sending while a frame is incomplete. [env: SESSIOND_MIN_RECEIVE_RATE] (default: 1024)")
    var minReceiveRate: Int?

    @Option(help: "TLS on the RPC port: PEM file with the server certificate (then intermediates). Needs --tls-key. [env: SESSIOND_TLS_CERT]")
    var tlsCert: String?

    @Option(help: "PEM file with the private key of --tls-cert (readable by sessiond only). [env: SESSIOND_TLS_KEY]")
    var tlsKey: String?

    @Option(help: "Require client certificates signed by a CA in this PEM file (mutual TLS). Needs --tls-cert. [env: SESSIOND_TLS_CLIENT_CA]")
    var tlsClientCa: String?

    @Option(help: "PostgreSQL: milliseconds an owner that stopped answering keeps the partition before another instance takes it over. [env: SESSIOND_PARTITION_LEASE_MS] (default: 10000)")
    var partitionLeaseMs: Int?

    @Option(help: "PostgreSQL: HOST:PORT where the other instances reach this one while it owns the partition. [env: SESSIOND_ADVERTISE] (default: the listen address, 0.0.0.0 as 127.0.0.1)")
    var advertise: String?

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        func value<T>(_ flag: T?, _ name: String, _ parse: (String) -> T?) throws -> T? {
            if let flag { return flag }
            guard let raw = env[name], !raw.isEmpty else { return nil }
            guard let v = parse(raw) else { throw ValidationError("\(name)='\(raw)' is not a valid value") }
            return v
        }
        var options = SessionDaemon.Options()
        let listen = try value(self.listen, "SESSIOND_LISTEN", { $0 }) ?? "127.0.0.1:7411"
        guard let (host, port) = parseListen(listen) else {
            throw ValidationError("--listen '\(listen)' is not HOST:PORT (for example 127.0.0.1:7411 or 0.0.0.0:7411)")
        }
        options.server.host = host
        options.server.port = port
        options.dataDirectory = try value(dataDir, "SESSIOND_DATA_DIR", { $0 }) ?? options.dataDirectory
        options.storeURL = try value(store, "SESSIOND_STORE", { $0 })
        func positive<T: Comparable & Numeric>(_ v: T?, _ name: String, into target: inout T) throws {
            guard let v else { return }
            guard v > 0 else { throw ValidationError("\(name) must be greater than 0") }
            target = v
        }
        try positive(value(maxFrameBytes, "SESSIOND_MAX_FRAME_BYTES", { Int($0) }), "--max-frame-bytes", into: &options.server.maxFrameBytes)
        try positive(value(maxConcurrentCalls, "SESSIOND_MAX_CONCURRENT_CALLS", { Int($0) }), "--max-concurrent-calls", into: &options.server.maxConcurrentCallsPerConnection)
        try positive(value(maxConnections, "SESSIOND_MAX_CONNECTIONS", { Int($0) }), "--max-connections", into: &options.server.maxConnections)
        try positive(value(maxConnectionsPerPeer, "SESSIOND_MAX_CONNECTIONS_PER_PEER", { Int($0) }), "--max-connections-per-peer", into: &options.server.maxConnectionsPerPeer)
        try positive(value(firstCallTimeout, "SESSIOND_FIRST_CALL_TIMEOUT", { Double($0) }), "--first-call-timeout", into: &options.server.firstCallTimeoutSeconds)
        try positive(value(minReceiveRate, "SESSIOND_MIN_RECEIVE_RATE", { Int($0) }), "--min-receive-rate", into: &options.server.minReceiveBytesPerSecond)
        try positive(value(maxMetadataBytes, "SESSIOND_MAX_METADATA_BYTES", { Int($0) }), "--max-metadata-bytes", into: &options.server.maxMetadataBytes)
        try positive(value(idleTimeout, "SESSIOND_IDLE_TIMEOUT", { Double($0) }), "--idle-timeout", into: &options.server.idleTimeoutSeconds)
        try positive(value(frameTimeout, "SESSIOND_FRAME_TIMEOUT", { Double($0) }), "--frame-timeout", into: &options.server.frameTimeoutSeconds)
        try positive(value(maxBufferedBytes, "SESSIOND_MAX_BUFFERED_BYTES", { Int($0) }), "--max-buffered-bytes", into: &options.server.maxBufferedBytesPerConnection)
        try positive(value(shutdownGrace, "SESSIOND_SHUTDOWN_GRACE", { Double($0) }), "--shutdown-grace", into: &options.server.shutdownGraceSeconds)
        if options.server.maxFrameBytes > 64 * 1024 * 1024 {
            throw ValidationError("--max-frame-bytes may be at most 67108864 (64 MiB)")
        }
        if let lease = try value(partitionLeaseMs, "SESSIOND_PARTITION_LEASE_MS", { Int($0) }) {
            guard lease >= 1000 else { throw ValidationError("--partition-lease-ms must be at least 1000") }
            options.partitionLeaseMillis = Int64(lease)
        }
        if let advertise = try value(self.advertise, "SESSIOND_ADVERTISE", { $0 }) {
            guard parseListen(advertise) != nil else { throw ValidationError("--advertise '\(advertise)' is not HOST:PORT") }
            options.advertiseAddress = advertise
        }
        let tlsCert = try value(self.tlsCert, "SESSIOND_TLS_CERT", { $0 })
        let tlsKey = try value(self.tlsKey, "SESSIOND_TLS_KEY", { $0 })
        let tlsClientCA = try value(self.tlsClientCa, "SESSIOND_TLS_CLIENT_CA", { $0 })
        switch (tlsCert, tlsKey) {
        case let (cert?, key?):
            options.server.tls = RPCServerTLS(certificateChainPath: cert, privateKeyPath: key, clientCAPath: tlsClientCA)
        case (nil, nil):
            if tlsClientCA != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        case (nil, _?): throw ValidationError("--tls-key needs --tls-cert")
        case (_?, nil): throw ValidationError("--tls-cert needs --tls-key")
        }
        options.hostTestService = testService || env["SESSIOND_TEST_SERVICE"] == "1"
        options.allowEmptyStore = allowEmptyStore || env["SESSIOND_ALLOW_EMPTY_STORE"] == "1"
        let portFile = try value(self.portFile, "SESSIOND_PORT_FILE", { $0 })
        options.testClock = testClock || env["SESSIOND_TEST_CLOCK"] == "1"
        if let start = try value(testClockStartMs, "SESSIOND_TEST_CLOCK_START_MS", { Int64($0) }) {
            guard options.testClock else { throw ValidationError("--test-clock-start-ms needs --test-clock") }
            options.fixedClockStart = start
        }
        try positive(value(sweepIntervalMs, "SESSIOND_SWEEP_INTERVAL_MS", { Int($0) }), "--sweep-interval-ms", into: &options.sweepIntervalMillis)
        switch try value(durability, "SESSIOND_DURABILITY", { $0 }) ?? "full" {
        case "full": options.synchronousCommits = true
        case "process-crash": options.synchronousCommits = false
        case let other: throw ValidationError("--durability '\(other)' is not one of full, process-crash")
        }
        if let token = try value(adminToken, "SESSIOND_ADMIN_TOKEN", { $0 }) {
            options.bootstrapAdminToken = token
        } else if let file = try value(adminTokenFile, "SESSIOND_ADMIN_TOKEN_FILE", { $0 }) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read the admin token file \(file)")
            }
            options.bootstrapAdminToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let token = try value(operatorToken, "SESSIOND_OPERATOR_TOKEN", { $0 }) {
            options.bootstrapOperatorToken = token
        } else if let file = try value(operatorTokenFile, "SESSIOND_OPERATOR_TOKEN_FILE", { $0 }) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read the operator token file \(file)")
            }
            options.bootstrapOperatorToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        let levelName = try value(logLevel, "SESSIOND_LOG_LEVEL", { $0 }) ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            throw ValidationError("--log-level '\(levelName)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let format = try value(logFormat, "SESSIOND_LOG_FORMAT", { $0 }) ?? "text"
        switch format.lowercased() {
        case "text":
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case "json":
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        default:
            throw ValidationError("--log-format '\(format)' is not text or json")
        }
        let logger = Logger(label: "sessiond")
        if let key = options.server.tls?.privateKeyPath {
            var info = stat()
            if stat(key, &info) == 0, info.st_mode & 0o077 != 0 {
                logger.warning("the TLS private key can be read by other users; make it 0600", metadata: [
                    "file": "\(key)", "mode": "\(String(info.st_mode & 0o777, radix: 8))",
                ])
            }
        }

        let daemon: SessionDaemon
        do {
            daemon = try SessionDaemon(options: options, logger: logger)
            try daemon.start()
        } catch let error as SessionDaemonStartupError {
            Self.fail(error.description, status: error.exitCode)
        } catch {
            Self.fail("cannot start: \(error)", status: SessionDaemonStartupError.Kind.usage.rawValue)
        }
        // Once serving (a failed start stays the one line of its error).
        logger.info("started", metadata: [
            "version": "\(BuildInfo.versionString)",
            "address": "\(options.server.host):\(daemon.server.port)",
            "store": "\(options.storeURL.map(Self.redacted) ?? "sqlite in \(options.dataDirectory)")",
            "durability": "\(options.synchronousCommits ? "full" : "process-crash")",
            "tls": "\(options.server.tls == nil ? "off" : options.server.tls?.clientCAPath == nil ? "on" : "mutual")",
        ])
        if let portFile {
            do {
                try Self.writePortFile(portFile, port: daemon.server.port)
            } catch {
                daemon.beginShutdown()
                daemon.server.waitUntilStopped()
                Self.fail("cannot write the port file \(portFile): \(error)", status: SessionDaemonStartupError.Kind.dataDirectoryUnwritable.rawValue)
            }
        }
        daemon.runUntilSignalled()
    }

    /// A store URL without its password (postgres://user:secret@host/db → postgres://user:***@host/db).
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", range: scheme.upperBound..<url.endIndex),
              let colon = url.range(of: ":", range: scheme.upperBound..<at.lowerBound) else { return url }
        return String(url[..<colon.upperBound]) + "***" + String(url[at.lowerBound...])
    }

    /// A start-up failure: the message alone on stderr (no usage text), then the exit status.
    private static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(status)
    }

    /// Writes `port` to `path` atomically: a 0600 temporary file beside it, fsynced, renamed.
    private static func writePortFile(_ path: String, port: Int) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let bytes = Array("\(port)\n".utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
    }

    private func parseListen(_ s: String) -> (String, Int)? {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}
