import Foundation
import SessionStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway PostgreSQL server for the tests: `initdb` into a fresh
/// temporary directory, then `pg_ctl start` on a free port of 127.0.0.1 only,
/// fsync on, trust authentication for the `postgres` superuser.
///
/// PostgreSQL refuses to run as root, and CI runs the tests as root: then
/// every server command runs as the `postgres` system user (`runuser -u
/// postgres --`) in a directory that user owns. An unprivileged developer runs
/// them as themself.
///
/// One shared server per test process (``shared()``), started on first use and
/// stopped at exit (an `atexit` hook, plus a watchdog process that stops it if
/// the test process dies without running its hooks); each test makes its own
/// database with ``makeDatabase()`` so tests run in parallel. A test that stops
/// the server starts a private one with ``start()`` and destroys it itself.
public final class PostgresTestServer: @unchecked Sendable {
    /// Where `initdb` and `pg_ctl` live (`/usr/lib/postgresql/<version>/bin`).
    public let binDirectory: String
    /// The temporary directory: data directory and logs (TCP only, no Unix socket).
    public let root: String
    /// The TCP port on 127.0.0.1.
    public let port: Int
    private let runsAsPostgresUser: Bool
    /// Guards `admin` (one connection used to create databases).
    private let lock = NSLock()
    private var admin: PostgresConnection?

    public var dataDirectory: String { root + "/data" }
    public var logFile: String { root + "/server.log" }

    /// The URL of `database` on this server.
    public func url(database: String) -> String {
        "postgres://postgres@127.0.0.1:\(port)/\(database)"
    }

    // MARK: The shared server

    private static let sharedServer = Result { try PostgresTestServer.start() }
    private static let atExitLock = NSLock()
    nonisolated(unsafe) private static var startedServers: [PostgresTestServer] = []

    /// The server shared by every test of this process, started on first use.
    public static func shared() throws -> PostgresTestServer {
        try sharedServer.get()
    }

    /// A new database on the shared server; returns its URL.
    public static func makeDatabase() throws -> String {
        try shared().makeDatabase()
    }

    // MARK: Lifecycle

    /// Initializes and starts a new server (stopped at exit if the caller does not destroy it first).
    public static func start() throws -> PostgresTestServer {
        let binDirectory = try findBinDirectory()
        let runsAsPostgresUser = getuid() == 0
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("session-pg.XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw PostgresTestServerError("mkdtemp failed: errno \(errno)")
        }
        let root = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        if runsAsPostgresUser {
            guard let user = getpwnam("postgres") else {
                throw PostgresTestServerError(
                    "the tests run as root and PostgreSQL refuses to: they need the 'postgres' system user, "
                        + "which the Debian package postgresql creates (apt-get install postgresql)")
            }
            guard chown(root, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                throw PostgresTestServerError("chown \(root) to postgres failed: errno \(errno)")
            }
        }

        var lastError: (any Error)?
        for _ in 0..<3 {
            let server = PostgresTestServer(
                binDirectory: binDirectory, root: root, port: try freePort(), runsAsPostgresUser: runsAsPostgresUser)
            do {
                if !FileManager.default.fileExists(atPath: server.dataDirectory) {
                    try server.initialize()
                }
                try server.configure()
                try server.startServer()
                server.launchWatchdog()
                atExitLock.lock()
                if startedServers.isEmpty {
                    atexit { PostgresTestServer.destroyAllAtExit() }
                }
                startedServers.append(server)
                atExitLock.unlock()
                return server
            } catch {
                lastError = error  // most likely the port was taken meanwhile: try another
            }
        }
        try? FileManager.default.removeItem(atPath: root)
        throw lastError ?? PostgresTestServerError("the PostgreSQL server did not start")
    }

    private init(binDirectory: String, root: String, port: Int, runsAsPostgresUser: Bool) {
        self.binDirectory = binDirectory
        self.root = root
        self.port = port
        self.runsAsPostgresUser = runsAsPostgresUser
    }

    /// Stops the server (`pg_ctl stop -m fast`): clients are disconnected at once.
    public func stop() throws {
        lock.lock()
        admin = nil
        lock.unlock()
        try runTool("pg_ctl", ["-D", dataDirectory, "-w", "-t", "30", "-m", "fast", "stop"])
    }

    /// Starts the stopped server again, on the same port and data directory.
    public func restart() throws {
        try startServer()
    }

    /// Stops the server if it runs and deletes its directory.
    public func destroy() {
        lock.lock()
        admin = nil
        lock.unlock()
        if FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") {
            try? runTool("pg_ctl", ["-D", dataDirectory, "-w", "-t", "30", "-m", "immediate", "stop"])
        }
        try? FileManager.default.removeItem(atPath: root)
        Self.atExitLock.lock()
        Self.startedServers.removeAll { $0 === self }
        Self.atExitLock.unlock()
    }

    private static func destroyAllAtExit() {
        atExitLock.lock()
        let servers = startedServers
        atExitLock.unlock()
        for server in servers { server.destroy() }
    }

    // MARK: Databases

    /// Creates an empty database `t_<random>` and returns its URL.
    public func makeDatabase() throws -> String {
        let name = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        lock.lock()
        defer { lock.unlock() }
        if admin == nil || admin?.isIdle == false {
            admin = try PostgresConnection(configuration: .init(url: url(database: "postgres")))
        }
        // A database name cannot be a bound parameter; this one is ours, [a-z0-9_].
        try admin!.execute("CREATE DATABASE \(name)")
        return url(database: name)
    }

    /// Runs one SQL script on `database` (as the superuser), for tests that
    /// tamper with a database behind the store's back.
    public func execute(_ sql: String, database: String) throws {
        let connection = try PostgresConnection(configuration: .init(url: url(database: database)))
        try connection.execute(sql)
    }

    // MARK: Steps

    private func initialize() throws {
        try runTool("initdb", [
            "-D", dataDirectory, "-U", "postgres", "-A", "trust", "--encoding=UTF8", "--no-locale",
            // Speeds up initdb only; the server itself runs with fsync on.
            "--no-sync",
        ])
    }

    private func configure() throws {
        let settings = """

            # session-storage tests
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = ''
            fsync = on
            synchronous_commit = on
            max_connections = 300
            max_wal_size = '2GB'
            log_min_messages = warning

            """
        guard let handle = FileHandle(forWritingAtPath: dataDirectory + "/postgresql.conf") else {
            throw PostgresTestServerError("cannot open \(dataDirectory)/postgresql.conf")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(settings.utf8))
    }

    private func startServer() throws {
        try runTool("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "30", "start"])
    }

    /// Stops the server and deletes its directory once this process is gone,
    /// even if it was killed before its `atexit` hook could run.
    private func launchWatchdog() {
        let stop = runsAsPostgresUser
            ? "runuser -u postgres -- \(binDirectory)/pg_ctl -D \(dataDirectory) -m immediate stop"
            : "\(binDirectory)/pg_ctl -D \(dataDirectory) -m immediate stop"
        let script = "while [ -e /proc/\(getpid()) ]; do sleep 1; done; \(stop) >/dev/null 2>&1; rm -rf \(root)"
        _ = try? Self.spawn("/bin/sh", ["-c", script], output: "/dev/null", directory: "/")
    }

    /// Runs a PostgreSQL tool (as the postgres user when this process is root)
    /// and throws with its output if it fails.
    private func runTool(_ tool: String, _ arguments: [String]) throws {
        let executable = binDirectory + "/" + tool
        let outputPath = root + "/\(tool)-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let pid =
            runsAsPostgresUser
            ? try Self.spawn("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments, output: outputPath, directory: root)
            : try Self.spawn(executable, arguments, output: outputPath, directory: root)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw PostgresTestServerError("waitpid failed: errno \(errno)") }
        }
        let exited = status & 0x7F == 0
        let code = (status >> 8) & 0xFF
        guard exited, code == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)).map { "\nserver log:\n" + $0.suffix(2_000) } ?? ""
            throw PostgresTestServerError(
                "\(tool) \(arguments.joined(separator: " ")) failed (\(exited ? "exit \(code)" : "signal \(status & 0x7F)")):\n\(text)\(log)")
        }
    }

    /// Starts `executable` with stdin from /dev/null, stdout and stderr to
    /// `output`, no other descriptor of ours, in `directory`.
    ///
    /// Not Foundation's `Process`: on Linux it learns that a child exited when
    /// a socket it shares with the child closes, and the server that `pg_ctl
    /// start` leaves running would keep that socket open: `waitUntilExit`
    /// would never return.
    static func spawn(_ executable: String, _ arguments: [String], output: String, directory: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc extensions that Swift's Glibc module does not export: looked up at run time.
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") {
            typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
            _ = directory.withCString { unsafeBitCast(symbol, to: ChangeDirectory.self)(&actions, $0) }
        }
        let environment = ["PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C", "LANG=C"]
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let code = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard code == 0 else {
            throw PostgresTestServerError("cannot start \(executable): \(String(cString: strerror(code)))")
        }
        return pid
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
    static func findBinDirectory() throws -> String {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap { name -> (Double, String)? in Double(name).map { ($0, name) } }
            .sorted { $0.0 > $1.0 }
        for (_, name) in versions {
            let bin = "\(base)/\(name)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb"),
                FileManager.default.isExecutableFile(atPath: bin + "/pg_ctl")
            {
                return bin
            }
        }
        throw PostgresTestServerError(
            "the PostgreSQL tests need the server binaries initdb and pg_ctl in \(base)/<version>/bin, and there are "
                + "none: install the Debian package postgresql (apt-get install postgresql)")
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw PostgresTestServerError("socket failed: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw PostgresTestServerError("bind failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw PostgresTestServerError("getsockname failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Why the test PostgreSQL server could not be set up.
public struct PostgresTestServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
