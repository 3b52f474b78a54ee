import Foundation
import RPC
import SessionAPI
import SessionClient
import SessionServer
import Synchronization
import Testing

/// The directory of the built products: the test bundle is built beside
/// `sessionctl` and `sessiond` (`swift build --build-tests` builds them all).
let binDirectory: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return (exe as NSString).deletingLastPathComponent
}()

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What one run of a binary produced.
struct RunResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// The environment a run starts from: the test's own, without any SESSIONCTL_* setting.
func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SESSIONCTL_") }
    for (k, v) in extra { env[k] = v }
    return env
}

/// Collects a pipe's output on a background thread.
final class Collector: Sendable {
    private let data = Mutex<Data>(Data())
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                data.withLock { $0.append(chunk) }
            }
            done.signal()
        }
    }

    var text: String { String(decoding: data.withLock { $0 }, as: UTF8.self) }

    func waitForEnd() { done.wait() }
}

/// A started binary.
final class Running: @unchecked Sendable {
    let process = Process()
    let out: Collector
    let err: Collector

    /// Starts `binary`; `stdin`, when given, is what it reads on standard input (else nothing).
    init(_ binary: String, _ arguments: [String], environment: [String: String], stdin: Data? = nil) throws {
        let path = (binDirectory as NSString).appendingPathComponent(binary)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CLIError("\(binary) is not built at \(path); run `swift build --build-tests` first")
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        let input = stdin.map { _ in Pipe() }
        process.standardInput = input ?? FileHandle.nullDevice
        out = Collector(o)
        err = Collector(e)
        try process.run()
        if let input, let stdin {
            input.fileHandleForWriting.write(stdin)
            try input.fileHandleForWriting.close()
        }
    }

    /// Waits until `condition` holds on (stdout, stderr), up to `seconds`.
    func wait(upTo seconds: Double, until condition: (String, String) -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition(out.text, err.text) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(out.text, err.text)
    }

    /// Stops the process (SIGTERM) and returns what it printed.
    func stop() -> RunResult {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        out.waitForEnd()
        err.waitForEnd()
        return RunResult(status: process.terminationStatus, stdout: out.text, stderr: err.text)
    }

    /// Waits for the process to exit by itself (killing it after `seconds`).
    func finish(within seconds: Double = 20) async -> RunResult {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < end { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        out.waitForEnd()
        err.waitForEnd()
        return RunResult(status: process.terminationStatus, stdout: out.text, stderr: err.text)
    }
}

/// Runs `sessionctl` with `arguments` to its end.
func sessionctl(_ arguments: [String], env: [String: String] = [:], stdin: Data? = nil) async throws -> RunResult {
    try await Running("sessionctl", arguments, environment: cleanEnvironment(env), stdin: stdin).finish()
}

/// A port where nothing listens, so that calls fail fast with UNAVAILABLE (exit 24)
/// once the arguments passed the CLI's own checks.
let deadServer = "127.0.0.1:1"
/// sessionctl's exit status for UNAVAILABLE: 10 + 14.
let exitUnavailable: Int32 = 24
/// sessionctl's exit status for a usage error.
let exitUsage: Int32 = 64

// MARK: - An in-process server

/// A `SessionDaemon` on 127.0.0.1, port 0, with a temporary data directory.
final class TestServer: Sendable {
    static let adminToken = "cli-test-admin"
    let daemon: SessionDaemon
    let directory: String

    var address: String { "127.0.0.1:\(daemon.server.port)" }

    init(_ configure: (inout SessionDaemon.Options) -> Void = { _ in }) throws {
        var template = Array((NSTemporaryDirectory() + "/sessionctl-test-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var o = SessionDaemon.Options()
        o.server.host = "127.0.0.1"
        o.server.port = 0
        o.server.shutdownGraceSeconds = 2
        o.dataDirectory = directory
        o.testClock = true
        o.bootstrapAdminToken = Self.adminToken
        o.synchronousCommits = false
        o.hostTestService = false
        configure(&o)
        var logger = RPCServer(configuration: .init(), services: []).logger
        logger.logLevel = .error
        daemon = try SessionDaemon(options: o, logger: logger)
        try daemon.start()
    }

    /// The environment that points sessionctl at this server as admin.
    var env: [String: String] { ["SESSIONCTL_SERVER": address, "SESSIONCTL_TOKEN": Self.adminToken] }

    func admin() throws -> SessionClient { try SessionClient(address: address, token: Self.adminToken) }

    func stop() async {
        await daemon.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh server, stopping it afterwards.
func withServer(_ configure: (inout SessionDaemon.Options) -> Void = { _ in }, _ body: (TestServer) async throws -> Void) async throws {
    let server = try TestServer(configure)
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}
