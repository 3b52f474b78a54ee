import Foundation
import RPC
import SessionClient
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real `sessiond` process, started from the binary built beside the test
/// bundle, for tests that need a process boundary: kill -9, SIGTERM, several
/// instances on one database.
final class DaemonProcess: @unchecked Sendable {
    let process: Process
    let port: Int
    let dataDirectory: String
    private let log: LogBuffer

    static let adminToken = "system-test-admin"

    /// The directory that holds the built products (`sessiond`).
    static var binDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// Starts sessiond on a free port and waits until it listens.
    static func start(dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> DaemonProcess {
        let binary = (binDirectory as NSString).appendingPathComponent("sessiond")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SystemTestError("sessiond is not built at \(binary); run `swift build --build-tests` first")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--listen", "127.0.0.1:0", "--data-dir", dataDirectory, "--admin-token", adminToken] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SESSIOND_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        let log = LogBuffer()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { log.append(String(decoding: data, as: UTF8.self)) }
        }
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let port = log.listeningPort() {
                return DaemonProcess(process: process, port: port, dataDirectory: dataDirectory, log: log)
            }
            if !process.isRunning {
                throw SystemTestError("sessiond exited with \(process.terminationStatus) before listening:\n\(log.text)")
            }
            usleep(20_000)
        }
        process.terminate()
        throw SystemTestError("sessiond did not start listening within 20 s:\n\(log.text)")
    }

    private init(process: Process, port: Int, dataDirectory: String, log: LogBuffer) {
        self.process = process
        self.port = port
        self.dataDirectory = dataDirectory
        self.log = log
    }

    var address: String { "127.0.0.1:\(port)" }
    var logText: String { log.text }

    func client(token: String? = DaemonProcess.adminToken) throws -> SessionClient {
        try SessionClient(address: address, token: token)
    }

    /// SIGKILL: no chance to flush or say goodbye.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits up to `timeout` seconds; returns the exit status (nil: still running, then killed).
    func terminate(timeout: Double = 20) -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill9()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

/// Accumulates a child's stderr.
final class LogBuffer: Sendable {
    private let state = Mutex("")
    func append(_ s: String) { state.withLock { $0 += s } }
    var text: String { state.withLock { $0 } }

    /// The port of the "listening address=127.0.0.1:PORT" log line.
    func listeningPort() -> Int? {
        let t = text
        guard let r = t.range(of: "address=127.0.0.1:") else { return nil }
        let digits = t[r.upperBound...].prefix { $0.isNumber }
        return Int(digits)
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
