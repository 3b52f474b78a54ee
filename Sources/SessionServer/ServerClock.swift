#if canImport(Glibc)
import Glibc
#endif
public import SessionCore
import Synchronization

/// The server's notion of "now": wall-clock time, plus an offset that an
/// admin may move forward when the server runs with `--test-clock`.
public final class ServerClock: Sendable {
    /// Whether `advance(by:)` is allowed.
    public let isTestClock: Bool
    private let offset = Mutex<Int64>(0)
    private let fixedBase: Int64?

    /// - Parameter fixedStart: tests may pin the wall clock to a fixed instant.
    public init(testClock: Bool, fixedStart: Timestamp? = nil) {
        self.isTestClock = testClock
        self.fixedBase = fixedStart?.millisecondsSinceEpoch
    }

    public func now() -> Timestamp {
        Timestamp(millisecondsSinceEpoch: (fixedBase ?? Self.wallMillis()) + offset.withLock { $0 })
    }

    /// Moves the clock forward by `ms` (test clock only).
    public func advance(byMilliseconds ms: Int64) {
        precondition(isTestClock && ms > 0)
        offset.withLock { $0 += ms }
    }

    private static func wallMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
