import Dispatch
public import RPC
import Logging
import SessionCore
import Synchronization

/// Fires the durable timers (customer inactivity, auto-end) stored with the
/// sessions: every `interval` it asks the store for due deadlines and fires
/// them, a batch per transaction. Nothing lives in memory, so after a restart
/// overdue timers fire on the first sweep; the engine re-checks each session
/// inside the transaction, so a timer fires once and a session that changed
/// meanwhile is left alone.
public final class TimerSweeper: Sendable {
    private let backend: SessionBackend
    private let intervalMillis: Int
    private let batchSize: Int
    private let queue = DispatchQueue(label: "sessiond.sweeper")
    /// Created by `start()`: a Dispatch source that was never resumed must not
    /// be released (libdispatch traps, as it did when a start-up failure
    /// dropped a daemon whose sweeper had not started).
    private let timer = Mutex<SourceBox?>(nil)
    private let stopped = Mutex(false)

    private struct SourceBox: @unchecked Sendable { let source: any DispatchSourceTimer }

    public init(backend: SessionBackend, intervalMillis: Int = 1000, batchSize: Int = 256) {
        self.backend = backend
        self.intervalMillis = max(10, intervalMillis)
        self.batchSize = batchSize
    }

    /// Sweeps at once, then every interval.
    /// Sweeps at once, then every interval. A second call, or one after `stop()`, does nothing.
    public func start() {
        let source = timer.withLock { box -> (any DispatchSourceTimer)? in
            guard box == nil, !stopped.withLock({ $0 }) else { return nil }
            let source = DispatchSource.makeTimerSource(queue: queue)
            box = SourceBox(source: source)
            return source
        }
        guard let source else { return }
        source.schedule(deadline: .now(), repeating: .milliseconds(intervalMillis), leeway: .milliseconds(intervalMillis / 10))
        source.setEventHandler { [self] in
            do {
                try sweepNow()
            } catch {
                backend.logger.warning("timer sweep failed", metadata: ["error": "\(error)"])
            }
        }
        source.resume()
    }

    /// Stops sweeping (safe whether or not `start()` ran, and more than once).
    public func stop() {
        stopped.withLock { $0 = true }
        let box = timer.withLock { box -> SourceBox? in
            defer { box = nil }
            return box
        }
        box?.source.cancel()
    }

    /// Fires every timer due now; returns how many transitions that made.
    @discardableResult
    public func sweepNow() throws(RPCError) -> Int {
        var transitions = 0
        for _ in 0..<10_000 {
            let changes = try backend.write(as: .system) { engine, _, now, repo in
                try engine.fireDueTimers(at: now, limit: batchSize, in: &repo)
            }
            if changes.events.isEmpty { break }
            transitions += changes.events.count
        }
        if transitions > 0 {
            backend.logger.debug("timers fired", metadata: ["transitions": "\(transitions)"])
        }
        return transitions
    }
}
