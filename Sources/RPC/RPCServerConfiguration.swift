/// Where a server listens and the limits it enforces on every peer.
public struct RPCServerConfiguration: Sendable {
    /// Host to bind (`127.0.0.1`, `0.0.0.0`, `::`, a name).
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 picks a free one (see ``RPCServer/port``).
    public var port: Int = 50051
    /// Largest frame accepted or sent, in bytes (the 4-byte length excluded).
    public var maxFrameBytes: Int = 4 * 1024 * 1024
    /// Calls in flight on one connection; more are refused with RESOURCE_EXHAUSTED.
    public var maxConcurrentCallsPerConnection: Int = 1024
    /// Open connections; more are told RESOURCE_EXHAUSTED in a go-away and closed.
    public var maxConnections: Int = 4096
    /// Bytes of request metadata (keys plus values) per call.
    public var maxMetadataBytes: Int = 16 * 1024
    /// A connection with no call in flight and no frame for this long is closed.
    public var idleTimeoutSeconds: Double = 300
    /// A connection must finish its preface, and any frame it has begun, within this.
    public var frameTimeoutSeconds: Double = 10
    /// Response bytes buffered per connection before the server stops reading
    /// from it (and streaming handlers wait): backpressure on a peer that does not read.
    public var maxBufferedBytesPerConnection: Int = 8 * 1024 * 1024
    /// How long graceful shutdown lets in-flight calls finish.
    public var shutdownGraceSeconds: Double = 10

    public init() {}
}
