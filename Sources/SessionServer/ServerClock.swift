#if canImport(Glibc)
import Glibc
#endif
public import SessionCore
import Synchronization

/// The server's notion of "now": wall-clock time, plus an offset that an
/// admin may move forward when the server runs with `--test-clock`.
///
/// The offset is persisted (store settings) before an advance is answered
/// and loaded at start, and `now()` never goes backwards: not within a run
/// (a floor of the last time reported) and not across restarts (the time
/// reached by the last advance is persisted too).
public final class ServerClock: Sendable {
    /// Whether `advance(by:)` is allowed.
    public let isTestClock: Bool
    /// The test offset, and the floor `now()` never goes below; read on every command
    /// without a lock (a mutex here is taken by every connection thread and the state owner).
    private let offset = Atomic<Int64>(0)
    private let floor = Atomic<Int64>(.min)
    private let advancing = Mutex(())
    private let fixedBase: Int64?
    private let store: (any SessionStore)?

    static let offsetKey = "test_clock_offset_ms"
    static let reachedKey = "test_clock_reached_ms"

    /// A clock whose offset lives in memory only.
    /// - Parameter fixedStart: tests may pin the wall clock to a fixed instant.
    public init(testClock: Bool, fixedStart: Timestamp? = nil) {
        self.isTestClock = testClock
        self.fixedBase = fixedStart?.millisecondsSinceEpoch
        self.store = nil
    }

    /// A clock whose test offset is kept in `store` across restarts: call
    /// ``loadPersistedState(from:)`` once the store is open, before serving.
    public init(testClock: Bool, fixedStart: Timestamp? = nil, store: any SessionStore) {
        self.isTestClock = testClock
        self.fixedBase = fixedStart?.millisecondsSinceEpoch
        self.store = store
    }

    /// Loads a test clock's persisted offset and the time it had reached.
    public func loadPersistedState(from store: any SessionStore) throws {
        guard isTestClock else { return }
        let saved = try store.settings([Self.offsetKey, Self.reachedKey])
        offset.store(saved[Self.offsetKey] ?? 0, ordering: .sequentiallyConsistent)
        raiseFloor(to: saved[Self.reachedKey] ?? .min)
    }

    public func now() -> Timestamp {
        let base = fixedBase ?? Self.wallMillis()
        return Timestamp(millisecondsSinceEpoch: raiseFloor(to: base + offset.load(ordering: .acquiring)))
    }

    /// Raises the floor to `ms` (never lowers it) and returns the floor.
    @discardableResult
    private func raiseFloor(to ms: Int64) -> Int64 {
        var current = floor.load(ordering: .acquiring)
        while current < ms {
            let (exchanged, found) = floor.compareExchange(expected: current, desired: ms, ordering: .acquiringAndReleasing)
            if exchanged { return ms }
            current = found
        }
        return current
    }

    /// Moves the clock forward by `ms` (test clock only); durable before it returns.
    public func advance(byMilliseconds ms: Int64) throws {
        precondition(isTestClock && ms > 0)
        let base = fixedBase ?? Self.wallMillis()
        // Advances are serialized among themselves (so two never persist out of
        // order), but `now()` never waits for the store: a write transaction in
        // flight reads the clock, and must not wait behind this one.
        try advancing.withLock { _ in
            let newOffset = offset.load(ordering: .acquiring) + ms
            let reached = max(floor.load(ordering: .acquiring), base + newOffset)
            try store?.setSettings([Self.offsetKey: newOffset, Self.reachedKey: reached])
            raiseFloor(to: reached)
            offset.store(newOffset, ordering: .releasing)
        }
    }

    private static func wallMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
