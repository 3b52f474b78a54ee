import Foundation
import ProtoRuntime
public import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on standard error —
/// `{"time":"…","level":"info","label":"sessiond","message":"…", …metadata}` — for log shippers
/// (Loki, Elasticsearch, CloudWatch). Metadata keys become fields; a key that collides with one of
/// the fixed fields is prefixed with `meta_`. Lines are written whole, one `write` each.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        line.utf8CString.withUnsafeBufferPointer { buffer in
            var done = 0
            let count = buffer.count - 1  // without the NUL
            while done < count {
                let n = Foundation.write(2, buffer.baseAddress! + done, count - done)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                done += n
            }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    private static let fixed: Set<String> = ["time", "level", "label", "message", "source"]

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("time", Self.timestamp()), ("level", event.level.rawValue), ("label", label), ("message", event.message.description),
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            fields.append((Self.fixed.contains(key) ? "meta_" + key : key, Self.flatten(value)))
        }
        // proto3 JSON's renderer does the escaping (one set of rules for every JSON this server writes).
        write(ProtoJSON.object(fields.map { ($0.0, ProtoJSON.string($0.1)) }).rendered() + "\n")
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): "{" + d.sorted { $0.key < $1.key }.map { "\($0.key): \(flatten($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    private static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(ts.tv_nsec / 1_000_000))
    }
}
