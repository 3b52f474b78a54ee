public import SessionCore
import Synchronization

/// Wakes event watchers, and with a state owner hands them the durable events themselves.
///
/// With a state owner (the embedded store), the owner publishes each batch's events once the
/// batch is durable: watchers get them from memory, in order, with no store read and no timer.
/// A watcher reads the store only to catch up: at its start (the events before it subscribed),
/// and when it fell so far behind that its mailbox overflowed.
/// Without an owner (PostgreSQL, possibly several instances on one database), watchers are woken
/// after each local commit and once a second (for other instances' commits) and read the store.
public final class EventHub: Sendable {
    private let watchers = Mutex<[UInt64: Watcher]>([:])
    private let nextID = Mutex<UInt64>(0)
    private let ended = Mutex(false)

    /// Events a watcher may hold unread before it has to catch up from the store instead.
    public static let mailboxLimit = 4096

    public var isEnded: Bool { ended.withLock { $0 } }

    public init() {}

    /// One watcher's wake-ups and mailbox.
    public final class Watcher: Sendable {
        let continuation: AsyncStream<Void>.Continuation
        let sessionId: String?
        private let mailbox = Mutex(Mailbox())

        struct Mailbox {
            var events: [Event] = []
            var overflowed = false
        }

        init(continuation: AsyncStream<Void>.Continuation, sessionId: String?) {
            self.continuation = continuation
            self.sessionId = sessionId
        }

        func deliver(_ events: [Event]) {
            let wanted = sessionId.map { id in events.filter { $0.sessionId == id } } ?? events
            guard !wanted.isEmpty else { return }
            mailbox.withLock { m in
                if m.overflowed { return }
                if m.events.count + wanted.count > EventHub.mailboxLimit {
                    m.events = []
                    m.overflowed = true
                } else {
                    m.events.append(contentsOf: wanted)
                }
            }
            continuation.yield()
        }

        /// The events delivered since the last call, or nil if some were dropped (catch up from the store).
        public func take() -> [Event]? {
            mailbox.withLock { m in
                defer { m.events = []; m.overflowed = false }
                return m.overflowed ? nil : m.events
            }
        }
    }

    /// Wakes every watcher (they read the store).
    public func notify() {
        let all = watchers.withLock { Array($0.values) }
        for w in all { w.continuation.yield() }
    }

    /// Hands durable events, in cursor order, to every watcher.
    public func publish(_ events: [Event]) {
        guard !events.isEmpty else { return }
        let all = watchers.withLock { Array($0.values) }
        for w in all { w.deliver(events) }
    }

    public func endAll() {
        ended.withLock { $0 = true }
        let all = watchers.withLock { w -> [Watcher] in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for w in all { w.continuation.finish() }
    }

    /// Subscribes a watcher: a first wake-up at once, then one per local commit (or published
    /// batch), plus one every `tickMillis` when given (for commits of other instances).
    public func subscribe(sessionId: String? = nil, tickMillis: UInt64? = 1000) -> (watcher: Watcher, stream: AsyncStream<Void>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let watcher = Watcher(continuation: continuation, sessionId: sessionId)
        let id = nextID.withLock { $0 += 1; return $0 }
        watchers.withLock { $0[id] = watcher }
        if isEnded {
            _ = watchers.withLock { $0.removeValue(forKey: id) }
            continuation.finish()
        }
        continuation.yield()
        let ticker = tickMillis.map { millis in
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: millis * 1_000_000)
                    continuation.yield()
                }
            }
        }
        let cancel: @Sendable () -> Void = { [weak self] in
            ticker?.cancel()
            continuation.finish()
            _ = self?.watchers.withLock { $0.removeValue(forKey: id) }
        }
        return (watcher, stream, cancel)
    }
}
