public import ProtoRuntime

/// A type-erased method implementation: decodes the request from the frame
/// (on the connection's queue), then runs where its policy says.
public struct RPCMethodHandler: Sendable {
    /// A decoded unary call, ready to run: returns the serialized response.
    package typealias PreparedUnary = @Sendable (RPCServerContext) throws -> [UInt8]
    /// A decoded async unary call, ready to run: returns the serialized response.
    package typealias PreparedAsyncUnary = @Sendable (RPCServerContext) async throws -> [UInt8]
    /// A decoded deferred unary call, ready to start: answers through the responder, from any thread.
    package typealias PreparedDeferred = @Sendable (RPCServerContext, RPCRawResponder) -> Void
    /// A decoded server-streaming call, ready to run.
    package typealias PreparedStream = @Sendable (RPCServerContext, any RPCRawStreamSink) async throws -> Void

    /// Each case prepares a call from its payload and metadata (the metadata: for a forwarding
    /// handler, which decides from it where the call goes).
    package enum Body: Sendable {
        case unary(@Sendable (UnsafeRawBufferPointer, RPCMetadata) throws(RPCError) -> PreparedUnary)
        case asyncUnary(@Sendable (UnsafeRawBufferPointer, RPCMetadata) throws(RPCError) -> PreparedAsyncUnary)
        case deferred(@Sendable (UnsafeRawBufferPointer, RPCMetadata) throws(RPCError) -> PreparedDeferred)
        case serverStreaming(@Sendable (UnsafeRawBufferPointer, RPCMetadata) throws(RPCError) -> PreparedStream)
    }

    public let descriptor: RPCMethodDescriptor
    public let policy: RPCExecutionPolicy
    package let body: Body

    package init(descriptor: RPCMethodDescriptor, policy: RPCExecutionPolicy, body: Body) {
        self.descriptor = descriptor
        self.policy = policy
        self.body = body
    }

    /// A unary method.
    public init<Request: ProtoCMessage, Response: ProtoCMessage>(
        unary descriptor: RPCMethodDescriptor,
        policy: RPCExecutionPolicy = .pool,
        handler: @escaping @Sendable (Request, RPCServerContext) throws -> Response
    ) {
        self.descriptor = descriptor
        self.policy = policy
        self.body = .unary { bytes, _ throws(RPCError) in
            let request = try decodeRequest(Request.self, bytes, descriptor)
            return { context in try handler(request, context).serializedBytes() }
        }
    }

    /// An async unary method: runs in a task, so waiting (for storage) suspends instead of
    /// holding a thread. Its policy is `.pool` (it never runs on the connection's queue).
    public init<Request: ProtoCMessage, Response: ProtoCMessage>(
        asyncUnary descriptor: RPCMethodDescriptor,
        handler: @escaping @Sendable (Request, RPCServerContext) async throws -> Response
    ) {
        self.descriptor = descriptor
        self.policy = .pool
        self.body = .asyncUnary { bytes, _ throws(RPCError) in
            let request = try decodeRequest(Request.self, bytes, descriptor)
            return { context in try await handler(request, context).serializedBytes() }
        }
    }

    /// A deferred unary method: `handler` is called on the connection's queue right after the
    /// request is decoded, must return at once, and answers later through `RPCResponder` from any
    /// thread (no task, no thread waits). For handlers that hand the call to another executor (a
    /// state owner) and get a callback when it is done.
    public init<Request: ProtoCMessage, Response: ProtoCMessage>(
        deferredUnary descriptor: RPCMethodDescriptor,
        handler: @escaping @Sendable (Request, RPCServerContext, RPCResponder<Response>) -> Void
    ) {
        self.descriptor = descriptor
        self.policy = .inline
        self.body = .deferred { bytes, _ throws(RPCError) in
            let request = try decodeRequest(Request.self, bytes, descriptor)
            return { context, raw in handler(request, context, RPCResponder(raw: raw)) }
        }
    }

    /// A server-streaming method.
    public init<Request: ProtoCMessage, Response: ProtoCMessage>(
        serverStreaming descriptor: RPCMethodDescriptor,
        policy: RPCExecutionPolicy = .pool,
        handler: @escaping @Sendable (Request, RPCServerStreamWriter<Response>, RPCServerContext) async throws -> Void
    ) {
        self.descriptor = descriptor
        self.policy = policy
        self.body = .serverStreaming { bytes, _ throws(RPCError) in
            let request = try decodeRequest(Request.self, bytes, descriptor)
            return { context, sink in
                try await handler(request, RPCServerStreamWriter(sink: sink), context)
            }
        }
    }
}

private func decodeRequest<M: ProtoCMessage>(_ type: M.Type, _ bytes: UnsafeRawBufferPointer, _ method: RPCMethodDescriptor) throws(RPCError) -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw RPCError(.invalidArgument, "request of \(method.path) could not be decoded: \(error)")
    }
}

/// The answer of a deferred call, to be given exactly once (later answers are ignored).
package struct RPCRawResponder: Sendable {
    /// Runs `produce` on the connection's queue and sends what it returns (or the error it throws).
    package let complete: @Sendable (Result<@Sendable () throws -> [UInt8], RPCError>) -> Void
}

/// Answers a deferred call. The response is built by `complete(_:)`'s closure on the connection's
/// queue, not on the thread that answers, so that a single-threaded executor answering many calls
/// does not also serialize every response.
public struct RPCResponder<Response: ProtoCMessage>: Sendable {
    let raw: RPCRawResponder

    /// Answers with what `build` returns, run on the connection's queue; an error it throws is
    /// the call's status (an `RPCError` as it is, anything else INTERNAL).
    public func complete(_ build: @escaping @Sendable () throws -> Response) {
        raw.complete(.success({ try build().serializedBytes() }))
    }

    public func fail(_ error: RPCError) {
        raw.complete(.failure(error))
    }
}
