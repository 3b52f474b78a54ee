import Synchronization

/// What a handler knows about its call, and how it talks back besides its
/// response: response metadata, cancellation, deadline.
public final class RPCServerContext: Sendable {
    public let callID: UInt64
    public let method: RPCMethodDescriptor
    /// The request metadata, validated.
    public let metadata: RPCMetadata
    /// The peer's address, `host:port`.
    public let peer: String
    /// Monotonic deadline (`DispatchTime.now().uptimeNanoseconds` scale); nil without one.
    public let deadlineNanos: UInt64?
    /// The largest response message this call may send, in bytes (the frame
    /// limit less the envelope): a handler that builds a response of a size
    /// the caller chose checks it against this before allocating.
    public let maxResponseBytes: Int
    /// No other call of this connection was in flight and no other request was buffered behind
    /// this one when it started: a deferred handler that keeps the connection's queue busy until
    /// its own answer is ready (a leader commit) holds up nothing else of this connection.
    public let isSoleCall: Bool

    private let state = Mutex(State())

    private struct State {
        var cancelled = false
        var initialMetadata = RPCMetadata()
        var trailingMetadata = RPCMetadata()
        var onCancel: [@Sendable () -> Void] = []
    }

    package init(
        callID: UInt64, method: RPCMethodDescriptor, metadata: RPCMetadata, peer: String, deadlineNanos: UInt64?, maxResponseBytes: Int,
        isSoleCall: Bool = false
    ) {
        self.maxResponseBytes = maxResponseBytes
        self.isSoleCall = isSoleCall
        self.callID = callID
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadlineNanos = deadlineNanos
    }

    /// True once the client cancelled, the deadline passed or the connection closed.
    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Throws CANCELLED when the call is over, so long work can stop early.
    public func checkCancellation() throws(RPCError) {
        if isCancelled { throw RPCError(.cancelled, "call was cancelled") }
    }

    /// Time left before the deadline, in nanoseconds; nil without a deadline.
    public var remainingNanos: UInt64? {
        guard let deadlineNanos else { return nil }
        let now = monotonicNanos()
        return deadlineNanos > now ? deadlineNanos - now : 0
    }

    /// Metadata sent before the first response message.
    public var initialMetadata: RPCMetadata {
        get { state.withLock { $0.initialMetadata } }
        set { state.withLock { $0.initialMetadata = newValue } }
    }

    /// Metadata sent with the final status.
    public var trailingMetadata: RPCMetadata {
        get { state.withLock { $0.trailingMetadata } }
        set { state.withLock { $0.trailingMetadata = newValue } }
    }

    /// Runs `action` once when the call is cancelled (at once if it already is).
    public func onCancel(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.cancelled { return true }
            s.onCancel.append(action)
            return false
        }
        if runNow { action() }
    }

    package func cancel() {
        let actions = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.cancelled else { return [] }
            s.cancelled = true
            defer { s.onCancel = [] }
            return s.onCancel
        }
        for a in actions { a() }
    }

    package func takeMetadata() -> (initial: RPCMetadata, trailing: RPCMetadata) {
        state.withLock { ($0.initialMetadata, $0.trailingMetadata) }
    }
}
