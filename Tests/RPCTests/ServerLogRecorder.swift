import Foundation
import Logging
import Synchronization

/// Every test server's log at debug level, kept in memory (the last lines of
/// each server), so that a raw connection closed under a test can say what the
/// server did with it: a close the server logged has a reason; one it never
/// logged means something else in this process closed the server's descriptor.
/// Warnings and errors are also printed, as before.
final class ServerLogRecorder: Sendable {
    static let shared = ServerLogRecorder()
    private static let kept = 4000

    private let lines = Mutex<[String]>([])

    func record(_ line: String) {
        lines.withLock { l in
            l.append(line)
            if l.count > Self.kept + Self.kept / 4 { l.removeFirst(l.count - Self.kept) }
        }
    }

    /// The kept lines that name `peer` (e.g. `127.0.0.1:53412`).
    func lines(naming peer: String) -> [String] {
        lines.withLock { $0.filter { $0.contains("peer=\(peer) ") || $0.hasSuffix("peer=\(peer)") } }
    }

    /// A logger for a test server: everything recorded, warnings printed.
    static func logger(label: String = "rpc.server") -> Logger {
        Logger(label: label) { _ in Handler() }
    }

    struct Handler: LogHandler {
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let time = String(format: "%.6f", Date().timeIntervalSince1970)
            let line = "\(time) \(event.level) \(event.message) \(fields)"
            ServerLogRecorder.shared.record(line)
            if event.level >= .warning { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
    }
}
