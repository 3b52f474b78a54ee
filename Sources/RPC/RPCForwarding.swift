import Dispatch

/// What happens to a call of an ``RPCForwardingService``, decided when it arrives.
public enum RPCForwardDecision: Sendable {
    /// The wrapped service serves it.
    case serveLocally
    /// Passed on to another server of the same API (the owner of the data), over this channel.
    case forward(RPCClientChannel)
    /// Answered with this error (no server can take it now).
    case refuse(RPCError)
}

/// Decides where a call goes from its metadata (its token, say), on the connection's queue:
/// it must be quick and must not block.
public typealias RPCForwardTarget = @Sendable (RPCMetadata) -> RPCForwardDecision

/// A service whose calls are passed on, bytes as they came, to another server
/// while `target` says so, and served by `inner` otherwise (decided per call).
/// The caller's metadata (its token included) and remaining deadline go with the
/// call; the other server's status, message, trailing metadata and stream
/// messages come back unchanged. Cancelling the call cancels the forwarded one.
public struct RPCForwardingService: RPCService {
    public let inner: any RPCService
    public let target: RPCForwardTarget

    public init(_ inner: any RPCService, forwardTo target: @escaping RPCForwardTarget) {
        self.inner = inner
        self.target = target
    }

    public var serviceName: String { inner.serviceName }

    public func methodHandlers() -> [RPCMethodHandler] {
        inner.methodHandlers().map { RPCMethodHandler(forwarding: $0, to: target) }
    }
}

extension RPCMethodHandler {
    /// `local`, or the call forwarded (or refused) as `target()` decides.
    package init(forwarding local: RPCMethodHandler, to target: @escaping RPCForwardTarget) {
        let path = local.descriptor.path
        switch local.body {
        case .unary(let decode):
            // A synchronous handler that may be forwarded runs on the pool, never inline: a forwarded
            // call waits for the network, which must not hold the connection's queue.
            self.init(descriptor: local.descriptor, policy: .pool, body: .unary { bytes, metadata throws(RPCError) in
                guard let channel = try Self.channel(target, metadata) else { return try decode(bytes, metadata) }
                let payload = Array(bytes)
                return { context in try Self.forwardBlocking(channel, path, payload, context) }
            })
        case .asyncUnary(let decode):
            self.init(descriptor: local.descriptor, policy: local.policy, body: .asyncUnary { bytes, metadata throws(RPCError) in
                guard let channel = try Self.channel(target, metadata) else { return try decode(bytes, metadata) }
                let payload = Array(bytes)
                return { context in try await Self.forward(channel, path, payload, context) }
            })
        case .deferred(let decode):
            self.init(descriptor: local.descriptor, policy: local.policy, body: .deferred { bytes, metadata throws(RPCError) in
                guard let channel = try Self.channel(target, metadata) else { return try decode(bytes, metadata) }
                let payload = Array(bytes)
                return { context, responder in
                    let task = Task {
                        do throws(RPCError) {
                            let response = try await Self.forward(channel, path, payload, context)
                            responder.complete(.success({ response }))
                        } catch {
                            responder.complete(.failure(error))
                        }
                    }
                    context.onCancel { task.cancel() }
                }
            })
        case .serverStreaming(let decode):
            self.init(descriptor: local.descriptor, policy: local.policy, body: .serverStreaming { bytes, metadata throws(RPCError) in
                guard let channel = try Self.channel(target, metadata) else { return try decode(bytes, metadata) }
                let payload = Array(bytes)
                return { context, sink in
                    let events = try await channel.openStream(path: path, payload: payload, options: try Self.options(context))
                    for await event in events {
                        switch event {
                        case .message(let message, let initial):
                            if !initial.isEmpty { context.initialMetadata = initial }
                            try await sink.write(message)
                        case .end(let outcome):
                            if let error = outcome.error { throw error }
                            context.trailingMetadata = outcome.trailingMetadata
                            return
                        }
                    }
                }
            })
        }
    }

    /// The channel to forward over; nil: serve locally.
    private static func channel(_ target: RPCForwardTarget, _ metadata: RPCMetadata) throws(RPCError) -> RPCClientChannel? {
        switch target(metadata) {
        case .serveLocally: return nil
        case .refuse(let error): throw error
        case .forward(let channel): return channel
        }
    }

    /// The metadata key a forwarded call carries: a server passes a call on at most once, so two
    /// servers that each believe the other is the owner answer UNAVAILABLE instead of looping.
    public static let forwardedKey = "rpc-forwarded"

    private static func options(_ context: RPCServerContext) throws(RPCError) -> RPCCallOptions {
        guard context.metadata[forwardedKey] == nil else {
            throw RPCError(.unavailable, "this call was forwarded here by a server that took this one for the owner; the owner is changing, retry")
        }
        var metadata = RPCMetadata()
        for entry in context.metadata { metadata.add(entry.key, entry.value) }
        metadata.add(forwardedKey, "1")
        return RPCCallOptions(timeout: context.remainingNanos.map { .nanoseconds(Int64(clamping: $0)) }, metadata: metadata)
    }

    private static func forward(_ channel: RPCClientChannel, _ path: String, _ payload: [UInt8], _ context: RPCServerContext) async throws(RPCError) -> [UInt8] {
        let outcome = try await channel.unaryBytes(path: path, payload: payload, options: try options(context))
        if !outcome.initialMetadata.isEmpty { context.initialMetadata = outcome.initialMetadata }
        // An error carries the trailers itself (the server sends them with its status).
        if let error = outcome.error { throw error }
        context.trailingMetadata = outcome.trailingMetadata
        return outcome.payload ?? []
    }

    /// For a synchronous handler, which runs on the handler pool (it may block there).
    private static func forwardBlocking(_ channel: RPCClientChannel, _ path: String, _ payload: [UInt8], _ context: RPCServerContext) throws(RPCError) -> [UInt8] {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<[UInt8], RPCError> = .failure(RPCError(.internal, "forwarding did not finish"))
        let task = Task {
            do throws(RPCError) { result = .success(try await forward(channel, path, payload, context)) } catch { result = .failure(error) }
            done.signal()
        }
        context.onCancel { task.cancel() }
        done.wait()
        return try result.get()
    }
}
