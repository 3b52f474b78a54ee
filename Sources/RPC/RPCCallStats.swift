/// Calls by method and status code, and their durations, for metrics.
///
/// Each connection counts its own calls on its queue (no lock on the call path); a closed
/// connection's counts are folded into the server's, and a scrape asks each open connection for
/// a copy on its queue (``RPCServer/callStats(_:)``).
public struct RPCCallStats: Sendable {
    /// Upper bounds of the duration buckets, in seconds (Prometheus' `le`), `+Inf` implied.
    public static let bucketBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public struct Method: Sendable {
        public var codes: [RPCStatusCode: Int] = [:]
        /// Calls per bucket (not cumulative); the last one is over every bound.
        public var buckets = [Int](repeating: 0, count: RPCCallStats.bucketBounds.count + 1)
        public var seconds = 0.0
        public var count: Int { buckets.reduce(0, +) }
    }

    public private(set) var methods: [String: Method] = [:]

    public init() {}

    mutating func record(_ path: String, _ code: RPCStatusCode, nanos: UInt64) {
        let seconds = Double(nanos) / 1e9
        var bucket = Self.bucketBounds.count
        for (i, bound) in Self.bucketBounds.enumerated() where seconds <= bound {
            bucket = i
            break
        }
        Self.add(code, bucket, seconds, to: &methods[path, default: Method()])
    }

    /// One lookup of the method per call (the entry is changed in place).
    private static func add(_ code: RPCStatusCode, _ bucket: Int, _ seconds: Double, to m: inout Method) {
        m.codes[code, default: 0] += 1
        m.buckets[bucket] += 1
        m.seconds += seconds
    }

    mutating func merge(_ other: RPCCallStats) {
        for (path, m) in other.methods {
            var mine = methods[path] ?? Method()
            for (code, n) in m.codes { mine.codes[code, default: 0] += n }
            for i in mine.buckets.indices { mine.buckets[i] += m.buckets[i] }
            mine.seconds += m.seconds
            methods[path] = mine
        }
    }
}
