public import RPC
public import SessionAPI

/// `grpc.testing.TestService`, as gRPC's interop servers implement it: used
/// by the interop tests, `sessionctl echo` and the benchmark.
public struct TestServiceProvider: GrpcTesting.TestService.ServiceProtocol {
    public init() {}

    /// Cheap and non-blocking: answered on the connection queue, no thread hop.
    public func executionPolicy(for method: RPCMethodDescriptor) -> RPCExecutionPolicy { .inline }

    public func emptyCall(request: GrpcTesting.Empty, context: RPCServerContext) throws -> GrpcTesting.Empty {
        echoMetadata(context)
        return GrpcTesting.Empty()
    }

    public func unaryCall(request: GrpcTesting.SimpleRequest, context: RPCServerContext) throws -> GrpcTesting.SimpleResponse {
        echoMetadata(context)
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(RPCStatusCode(wireValue: UInt32(bitPattern: status.code)), status.message)
        }
        try Self.checkSize(Int(request.responseSize), context)
        var response = GrpcTesting.SimpleResponse()
        var payload = GrpcTesting.Payload()
        payload.body = [UInt8](repeating: 0, count: Int(request.responseSize))
        response.payload = payload
        return response
    }

    public func streamingOutputCall(
        request: GrpcTesting.StreamingOutputCallRequest,
        writer: RPCServerStreamWriter<GrpcTesting.StreamingOutputCallResponse>,
        context: RPCServerContext
    ) async throws {
        echoMetadata(context)
        // Every size is checked before the first message is built.
        for parameters in request.responseParameters {
            try Self.checkSize(Int(parameters.size), context)
            guard parameters.intervalUs >= 0 else {
                throw RPCError(.invalidArgument, "interval_us must not be negative")
            }
        }
        for parameters in request.responseParameters {
            if parameters.intervalUs > 0 {
                try await Task.sleep(nanoseconds: UInt64(parameters.intervalUs) * 1000)
            }
            var message = GrpcTesting.StreamingOutputCallResponse()
            var payload = GrpcTesting.Payload()
            payload.body = [UInt8](repeating: 0, count: Int(parameters.size))
            message.payload = payload
            try await writer.write(message)
        }
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(RPCStatusCode(wireValue: UInt32(bitPattern: status.code)), status.message)
        }
    }

    public func unimplementedCall(request: GrpcTesting.Empty, context: RPCServerContext) throws -> GrpcTesting.Empty {
        throw RPCError(.unimplemented, "UnimplementedCall is never implemented")
    }

    /// A size the caller chose, checked against the response limit before
    /// anything of that size is allocated.
    private static func checkSize(_ size: Int, _ context: RPCServerContext) throws {
        guard size >= 0 else {
            throw RPCError(.invalidArgument, "response size must not be negative")
        }
        guard size <= context.maxResponseBytes else {
            throw RPCError(.resourceExhausted, "response size of \(size) bytes exceeds the limit of \(context.maxResponseBytes) bytes")
        }
    }

    /// Interop `custom_metadata`: echo these two keys back.
    private func echoMetadata(_ context: RPCServerContext) {
        for value in context.metadata.values("x-grpc-test-echo-initial") {
            context.initialMetadata.add("x-grpc-test-echo-initial", value)
        }
        for value in context.metadata.values("x-grpc-test-echo-trailing-bin") {
            context.trailingMetadata.add("x-grpc-test-echo-trailing-bin", value)
        }
    }
}
