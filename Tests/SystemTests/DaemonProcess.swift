import Dispatch
import Foundation
import RPC
import SessionClient
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real `sessiond` process, started from the binary built beside the test
/// bundle, for tests that need a process boundary: kill -9, SIGTERM, start-up
/// failures, file modes, several instances on one database. The one harness
/// for real sessiond processes.
///
/// It listens on 127.0.0.1:0 and reports its port through `--port-file`
/// (written once it is bound and its store is open), so no port is guessed
/// and no client has to retry its way in. Its stderr is always captured; a
/// failed start, a timed-out wait or a bad exit records it with the issue.
final class DaemonProcess: @unchecked Sendable {
    let process: Process
    let port: Int
    let dataDirectory: String
    private let log: LogBuffer
    private let exited: ExitWaiter

    static let adminToken = "system-test-admin"
    /// Generous: a loaded machine (2 cores, other builds) can be slow to start a process.
    static let startTimeout: Double = 60

    /// The directory that holds the built products (`sessiond`).
    static var binDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// The sessiond binary; a missing one fails the test (never skips it).
    static func binary() throws -> String {
        let binary = (binDirectory as NSString).appendingPathComponent("sessiond")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SystemTestError("sessiond is not built at \(binary); run `swift build --build-tests` first")
        }
        return binary
    }

    /// A configured, not yet started child with its stderr captured.
    private static func makeProcess(
        arguments: [String], environment: [String: String], umask000: Bool
    ) throws -> (Process, LogBuffer, ExitWaiter) {
        let binary = try binary()
        let process = Process()
        if umask000 {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "umask 000; exec \"$0\" \"$@\"", binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SESSIOND_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        let log = LogBuffer()
        // A blocking read on a thread of its own, not `readabilityHandler`: tearing down the
        // Dispatch read source behind that handler while others come and go corrupts libdispatch's
        // epoll bookkeeping on Linux (swift-corelibs-libdispatch#949); the test process crashed in
        // `_dispatch_event_loop_drain` about one run in two of the kill -9 loop under load.
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                log.append(String(decoding: data, as: UTF8.self))
            }
            log.markEOF()
        }
        let exited = ExitWaiter()
        process.terminationHandler = { _ in exited.signal() }
        return (process, log, exited)
    }

    /// Starts sessiond on 127.0.0.1:0 and waits (up to `startTimeout`) for its port file.
    static func start(
        dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:],
        adminToken: String? = DaemonProcess.adminToken, umask000: Bool = false
    ) throws -> DaemonProcess {
        let portFile = makeTemporaryDirectory() + "/port"
        defer { removeDirectory((portFile as NSString).deletingLastPathComponent) }
        var all = ["--listen", "127.0.0.1:0", "--data-dir", dataDirectory, "--port-file", portFile]
        if let adminToken { all += ["--admin-token", adminToken] }
        let (process, log, exited) = try makeProcess(arguments: all + arguments, environment: environment, umask000: umask000)
        try process.run()
        let deadline = Date().addingTimeInterval(startTimeout)
        while true {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
               let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return DaemonProcess(process: process, port: port, dataDirectory: dataDirectory, log: log, exited: exited)
            }
            if exited.wait(until: Date().addingTimeInterval(0.01)) {
                let message = "sessiond exited with \(process.terminationStatus) before writing its port file:\n\(log.text)"
                Issue.record(Comment(rawValue: message))
                throw SystemTestError(message)
            }
            if Date() >= deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let message = "sessiond did not write its port file within \(Int(startTimeout)) s:\n\(log.text)"
                Issue.record(Comment(rawValue: message))
                throw SystemTestError(message)
            }
        }
    }

    /// Runs sessiond expecting it to refuse to start: waits for its exit and
    /// returns the status and everything it printed.
    static func runToExit(arguments: [String], environment: [String: String] = [:], timeout: Double = 60) throws -> (status: Int32, output: String) {
        let (process, log, exited) = try makeProcess(arguments: arguments, environment: environment, umask000: false)
        try process.run()
        guard exited.wait(until: Date().addingTimeInterval(timeout)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let message = "sessiond did not exit within \(Int(timeout)) s:\n\(log.text)"
            Issue.record(Comment(rawValue: message))
            throw SystemTestError(message)
        }
        process.waitUntilExit()
        // The pipe may still hold the last bytes: read until EOF.
        _ = log.waitForEOF(until: Date().addingTimeInterval(5))
        return (process.terminationStatus, log.text)
    }

    private init(process: Process, port: Int, dataDirectory: String, log: LogBuffer, exited: ExitWaiter) {
        self.process = process
        self.port = port
        self.dataDirectory = dataDirectory
        self.log = log
        self.exited = exited
    }

    var address: String { "127.0.0.1:\(port)" }
    var logText: String { log.text }
    var logBuffer: LogBuffer { log }

    /// A new client: the daemon is bound and its store open once the port is known.
    func client(token: String? = DaemonProcess.adminToken) throws -> SessionClient {
        try SessionClient(address: address, token: token)
    }

    /// Records the child's log with an issue (for a failing test).
    func recordLog(_ why: String) {
        Issue.record(Comment(rawValue: "\(why); sessiond log:\n\(log.text)"))
    }

    /// Runs `body`; if it throws, records the child's log before rethrowing.
    func withLogOnFailure<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            recordLog("the test failed with \(error)")
            throw error
        }
    }

    /// Runs `body`; if it throws, records every daemon's log before rethrowing.
    static func withLogsOnFailure<T>(_ daemons: [DaemonProcess], _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            for d in daemons { d.recordLog("the test failed with \(error)") }
            throw error
        }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Waits up to `timeout` seconds for the process to exit; true if it did.
    func waitForExit(timeout: Double) -> Bool {
        exited.wait(until: Date().addingTimeInterval(timeout))
    }

    /// SIGTERM, then waits up to `timeout` seconds; returns the exit status
    /// (nil: still running, then killed). A status other than 0 records the log.
    func terminate(timeout: Double = 30) -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        guard waitForExit(timeout: timeout) else {
            recordLog("sessiond did not exit within \(timeout) s of SIGTERM")
            kill9()
            return nil
        }
        process.waitUntilExit()
        if process.terminationStatus != 0 { recordLog("sessiond exited with \(process.terminationStatus)") }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

/// Signalled once by the process's termination handler.
final class ExitWaiter: Sendable {
    private let condition = Mutex(false)
    private let semaphore = DispatchSemaphore(value: 0)

    func signal() {
        condition.withLock { $0 = true }
        semaphore.signal()
    }

    /// True once the process has exited (waits until `deadline` for it).
    func wait(until deadline: Date) -> Bool {
        if condition.withLock({ $0 }) { return true }
        let seconds = max(0, deadline.timeIntervalSinceNow)
        if semaphore.wait(timeout: .now() + seconds) == .success {
            semaphore.signal()  // stays signalled for later waits
            return true
        }
        return condition.withLock { $0 }
    }
}

/// Accumulates a child's stderr.
final class LogBuffer: Sendable {
    private let state = Mutex("")
    private let eof = DispatchSemaphore(value: 0)
    func append(_ s: String) { state.withLock { $0 += s } }
    var text: String { state.withLock { $0 } }
    func markEOF() { eof.signal() }

    /// Waits until the pipe reached end of file (the child and its children closed it).
    func waitForEOF(until deadline: Date) -> Bool {
        eof.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .success
    }

    /// Waits until the log contains `needle`; true if it did before `deadline`.
    func waitFor(_ needle: String, until deadline: Date) async -> Bool {
        while Date() < deadline {
            if text.contains(needle) { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return text.contains(needle)
    }
}

struct SystemTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A fresh temporary directory, removed by `remove()`.
func makeTemporaryDirectory() -> String {
    var template = Array((NSTemporaryDirectory() + "/sessiond-system-XXXXXX").utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
