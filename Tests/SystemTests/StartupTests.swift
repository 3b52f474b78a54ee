import Foundation
import RPC
import SessionAPI
import SessionClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Start-up with a real sessiond: what it refuses, what it writes, with which modes.
@Suite("Start-up and the data directory with a real sessiond", .serialized)
struct StartupTests {
    /// Every entry of `dir` (recursively) with its permission bits.
    static func modes(_ dir: String) -> [String: Int] {
        var result: [String: Int] = [:]
        var info = stat()
        if stat(dir, &info) == 0 { result["."] = Int(info.st_mode & 0o7777) }
        for name in (try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? [] {
            if stat((dir as NSString).appendingPathComponent(name), &info) == 0 { result[name] = Int(info.st_mode & 0o7777) }
        }
        return result
    }

    static func fileSize(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    @Test("Port taken: one line 'cannot listen on ADDRESS: address already in use', exit 69, nothing written to the data dir")
    func portTaken() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        #expect(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0)
        #expect(listen(fd, 1) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))

        let parent = makeTemporaryDirectory()
        defer { removeDirectory(parent) }
        let dir = parent + "/data"
        let (status, output) = try DaemonProcess.runToExit(arguments: ["--listen", "127.0.0.1:\(port)", "--data-dir", dir])
        #expect(status == 69, "\(output)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "cannot listen on 127.0.0.1:\(port): address already in use")
        #expect(!FileManager.default.fileExists(atPath: dir), "the data directory was created before the bind")
    }

    @Test("Data dir cannot be created: the error alone (no usage text), exit 73, nothing written")
    func dataDirectoryUnwritable() throws {
        let parent = makeTemporaryDirectory()
        defer { removeDirectory(parent) }
        // Tests may run as root, whom modes do not stop: make the data dir's parent a regular file.
        let blocker = parent + "/not-a-directory"
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let (status, output) = try DaemonProcess.runToExit(arguments: ["--listen", "127.0.0.1:0", "--data-dir", blocker + "/data", "--log-level", "error"])
        #expect(status == 73, "\(output)")
        #expect(output.contains("cannot create the data directory"), "\(output)")
        #expect(!output.contains("USAGE") && !output.contains("--help"), "\(output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["not-a-directory"])
        #expect(try String(contentsOfFile: blocker, encoding: .utf8) == "x")
    }

    @Test("Under umask 000: data dir 0700, admin-token, marker, journal and sessions.sqlite(-wal,-shm) 0600")
    func ownerOnlyModes() async throws {
        let parent = makeTemporaryDirectory()
        defer { removeDirectory(parent) }
        let dir = parent + "/data"
        let daemon = try DaemonProcess.start(dataDirectory: dir, adminToken: nil, umask000: true)
        let secret = try String(contentsOfFile: dir + "/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try await daemon.withLogOnFailure {
            let admin = try daemon.client(token: secret)
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 1)  // writes: -wal and -shm exist now
            let running = Self.modes(dir)
            #expect(Set(running.keys.filter { !$0.hasPrefix("journal-") }) == [".", "admin-token", "operator-token", "sessiond.marker", "sessions.sqlite", "sessions.sqlite-wal", "sessions.sqlite-shm"], "\(running)")
            #expect(running.keys.contains { $0.hasPrefix("journal-") && $0.hasSuffix(".log") }, "the writes left no journal file: \(running)")
            #expect(running["."] == 0o700, "\(running)")
            for (name, mode) in running where name != "." { #expect(mode == 0o600, "\(name) is \(String(mode, radix: 8))") }
        }
        #expect(daemon.terminate() == 0)
        for (name, mode) in Self.modes(dir) where name != "." { #expect(mode == 0o600, "after stop: \(name) is \(String(mode, radix: 8))") }
    }

    @Test("A clean stop checkpoints the WAL: sessions.sqlite alone holds everything")
    func cleanStopCheckpoints() async throws {
        let dir = makeTemporaryDirectory(), copy = makeTemporaryDirectory()
        defer { removeDirectory(dir); removeDirectory(copy) }
        let daemon = try DaemonProcess.start(dataDirectory: dir)
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 1)
            _ = try await customerMessage(admin, conversation: "kept", channel: "web", message: "kept-m1")
        }
        #expect(daemon.terminate() == 0)
        #expect((Self.fileSize(dir + "/sessions.sqlite-wal") ?? 0) == 0, "the WAL still holds frames after a clean stop")
        try FileManager.default.copyItem(atPath: dir + "/sessions.sqlite", toPath: copy + "/sessions.sqlite")
        let restarted = try DaemonProcess.start(dataDirectory: copy)
        try await restarted.withLogOnFailure {
            let admin = try restarted.client()
            defer { admin.close() }
            #expect(try await openSessions(admin, conversation: "kept").count == 1)
        }
        #expect(restarted.terminate() == 0)
    }

    @Test("A data dir that held data refuses a missing, empty or damaged database (exit 65, token kept); --allow-empty-store starts empty")
    func lostDatabaseRefused() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let first = try DaemonProcess.start(dataDirectory: dir, adminToken: nil)
        let token = try String(contentsOfFile: dir + "/admin-token", encoding: .utf8)
        try await first.withLogOnFailure {
            // One write: the journal file now holds a batch of the database about to be lost.
            let admin = try first.client(token: token.trimmingCharacters(in: .whitespacesAndNewlines))
            defer { admin.close() }
            try await setUpChannelAndReps(admin, channel: "old", reps: 0)
        }
        #expect(first.terminate() == 0)
        let database = dir + "/sessions.sqlite"
        let arguments = ["--listen", "127.0.0.1:0", "--data-dir", dir, "--log-level", "error"]

        for damage in ["missing", "empty", "garbage"] {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
            switch damage {
            case "empty": #expect(FileManager.default.createFile(atPath: database, contents: Data()))
            case "garbage": #expect(FileManager.default.createFile(atPath: database, contents: Data(repeating: 0x5A, count: 8192)))
            default: break
            }
            let (status, output) = try DaemonProcess.runToExit(arguments: arguments)
            #expect(status == 65, "\(damage): \(output)")
            #expect(output.contains("refusing to start"), "\(damage): \(output)")
            #expect(!output.contains("USAGE"), "\(damage): \(output)")
            #expect(try String(contentsOfFile: dir + "/admin-token", encoding: .utf8) == token, "\(damage): the admin token changed")
            if damage == "missing" { #expect(!FileManager.default.fileExists(atPath: database), "a database was created") }
            if damage == "empty" { #expect(Self.fileSize(database) == 0) }
        }

        // The operator says starting empty is fine: it starts, and the old admin token still works.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--allow-empty-store"], adminToken: nil)
        try await daemon.withLogOnFailure {
            let admin = try daemon.client(token: token.trimmingCharacters(in: .whitespacesAndNewlines))
            defer { admin.close() }
            // Empty: the old database's journal was set aside, not replayed onto the new one.
            #expect(try await admin.channels.listChannels(.init()).channels.isEmpty)
        }
        #expect(daemon.terminate() == 0)
        #expect(try String(contentsOfFile: dir + "/admin-token", encoding: .utf8) == token)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasSuffix(".log.set-aside") })
    }

    @Test("The database is damaged while sessiond runs: health NOT_SERVING, calls UNAVAILABLE (not SERVING with INTERNAL)")
    func damagedAtRunTime() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir)
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 1)
            // Garbage over the database, an empty WAL, and a zeroed WAL index (shared
            // memory every connection maps): the next transaction rereads the file.
            let database = dir + "/sessions.sqlite"
            let size = Self.fileSize(database) ?? 0
            try Data(repeating: 0x5A, count: size).write(to: URL(fileURLWithPath: database))
            _ = truncate(database + "-wal", 0)
            let shm = FileHandle(forWritingAtPath: database + "-shm")
            shm?.write(Data(repeating: 0, count: Self.fileSize(database + "-shm") ?? 0))
            try shm?.close()

            // Reads are answered from memory and a write is durable in the journal; the tables
            // behind it are written moments later, which finds the file damaged, and from then on
            // every call is refused, reads included.
            var c = SessionsV1.Channel()
            c.id = "after-damage"
            c.type = .enhancedWebChatV2
            c.capacityModel = .tabBased
            var create = SessionsV1.ChannelRequest()
            create.channel = c
            _ = try? await admin.channels.createChannel(create)
            let refused = await waitUntil(seconds: 30) {
                do { _ = try await admin.channels.listChannels(.init()); return false } catch { return true }
            }
            #expect(refused, "calls were still answered 30 s after the database was damaged")
            var codes: [RPCStatusCode] = []
            for i in 0..<3 {
                do {
                    if i == 0 {
                        c.id = "after-damage-2"
                        create.channel = c
                        _ = try await admin.channels.createChannel(create)
                    } else {
                        _ = try await admin.channels.listChannels(.init())
                    }
                    codes.append(.ok)
                } catch let error as RPCError {
                    codes.append(error.code)
                    #expect(error.code == .unavailable, "\(error)")
                }
            }
            #expect(codes == [.unavailable, .unavailable, .unavailable], "\(codes)")
            #expect(try await admin.health.check(.init()).status == .notServing)
            #expect(daemon.logText.contains("the database is damaged: reporting NOT_SERVING"), "the damage was not detected as such")
        }
        _ = daemon.terminate()
    }

    @Test("PostgreSQL unreachable: the error alone, exit 75, the data dir untouched apart from its creation")
    func storeUnreachable() throws {
        let parent = makeTemporaryDirectory()
        defer { removeDirectory(parent) }
        // Port 1 on the loopback: nothing listens there, the connection is refused at once.
        let (status, output) = try DaemonProcess.runToExit(arguments: [
            "--listen", "127.0.0.1:0", "--data-dir", parent + "/data", "--store", "postgres://sessiond@127.0.0.1:1/none",
            "--admin-token", "t", "--log-level", "error",
        ])
        #expect(status == 75, "\(output)")
        #expect(output.contains("cannot reach the store"), "\(output)")
        #expect(!output.contains("USAGE"), "\(output)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: parent + "/data")) ?? []).isEmpty)
    }
}
