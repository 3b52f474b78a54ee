public import ProtoRuntime

/// A type-erased method implementation: decodes the request from the frame
/// (on the connection's queue), then runs where its policy says.
public struct RPCMethodHandler: Sendable {
    /// A decoded unary call, ready to run: returns the serialized response.
    package typealias PreparedUnary = @Sendable (RPCServerContext) throws -> [UInt8]
    /// A decoded async unary call, ready to run: returns the serialized response.
    package typealias PreparedAsyncUnary = @Sendable (RPCServerContext) async throws -> [UInt8]
    /// A decoded server-streaming call, ready to run.
    package typealias PreparedStream = @Sendable (RPCServerContext, any RPCRawStreamSink) async throws -> Void

    package enum Body: Sendable {
        case unary(@Sendable (UnsafeRawBufferPointer) throws(RPCError) -> PreparedUnary)
        case asyncUnary(@Sendable (UnsafeRawBufferPointer) throws(RPCError) -> PreparedAsyncUnary)
        case serverStreaming(@Sendable (UnsafeRawBufferPointer) throws(RPCError) -> PreparedStream)
    }

    public let descriptor: RPCMethodDescriptor
    public let policy: RPCExecutionPolicy
    package let body: Body

    /// A unary method.
    public init<Request: ProtoCMessage, Response: ProtoCMessage>(
        unary descriptor: RPCMethodDescriptor,
        policy: RPCExecutionPolicy = .pool,
        handler: @escaping @Sendable (Request, RPCServerContext) throws -> Response
    ) {
        self.descriptor = descriptor
        self.policy = policy
        self.body = .unary { bytes throws(RPCError) in
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
        self.body = .asyncUnary { bytes throws(RPCError) in
            let request = try decodeRequest(Request.self, bytes, descriptor)
            return { context in try await handler(request, context).serializedBytes() }
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
        self.body = .serverStreaming { bytes throws(RPCError) in
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
