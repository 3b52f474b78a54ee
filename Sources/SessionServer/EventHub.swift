import Synchronization

/// Wakes event watchers when this instance commits a change. Watchers read
/// the events themselves from the store (the source of truth), so a wake-up
/// carries no data, and a periodic tick covers changes made by other
/// instances sharing the database.
public final class EventHub: Sendable {
    private let watchers = Mutex<[UInt64: AsyncStream<Void>.Continuation]>([:])
    private let nextID = Mutex<UInt64>(0)
    private let ended = Mutex(false)

    /// True once `endAll()` ran: watchers end with UNAVAILABLE.
    public var isEnded: Bool { ended.withLock { $0 } }

    public init() {}

    /// Wakes every watcher.
    public func notify() {
        let all = watchers.withLock { Array($0.values) }
        for w in all { w.yield() }
    }

    /// Ends every watcher's stream, now and for later subscribers (the start
    /// of a graceful shutdown: open watches must not hold it up).
    public func endAll() {
        ended.withLock { $0 = true }
        let all = watchers.withLock { w -> [AsyncStream<Void>.Continuation] in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for w in all { w.finish() }
    }

    /// A stream of wake-ups: one now, one per `notify()`, and one every
    /// `tickMillis` (to see other instances' writes).
    public func subscribe(tickMillis: UInt64 = 1000) -> (stream: AsyncStream<Void>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextID.withLock { $0 += 1; return $0 }
        watchers.withLock { $0[id] = continuation }
        if isEnded {
            _ = watchers.withLock { $0.removeValue(forKey: id) }
            continuation.finish()
        }
        continuation.yield()
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: tickMillis * 1_000_000)
                continuation.yield()
            }
        }
        let cancel: @Sendable () -> Void = { [weak self] in
            ticker.cancel()
            continuation.finish()
            _ = self?.watchers.withLock { $0.removeValue(forKey: id) }
        }
        return (stream, cancel)
    }
}
