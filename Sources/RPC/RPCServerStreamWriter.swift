public import ProtoRuntime

/// Where a streaming handler's raw messages go (the server's call).
package protocol RPCRawStreamSink: Sendable {
    /// Queues one message; suspends while the connection's write buffer is
    /// over its bound (backpressure); throws CANCELLED once the call is over.
    func write(_ payload: [UInt8]) async throws
}

/// Sends the messages of a server-streaming call, in order.
public struct RPCServerStreamWriter<Message: ProtoCMessage>: Sendable {
    let sink: any RPCRawStreamSink

    package init(sink: any RPCRawStreamSink) {
        self.sink = sink
    }

    /// Sends one message. Suspends while the client is not reading fast
    /// enough; throws `RPCError` (CANCELLED) when the call is over.
    public func write(_ message: Message) async throws {
        try await sink.write(message.serializedBytes())
    }
}
