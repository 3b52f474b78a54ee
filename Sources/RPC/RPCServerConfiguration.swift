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
    /// Open connections from one peer address (IP, port ignored); more are
    /// refused like those over `maxConnections`, so that one host cannot take
    /// every slot. Behind a proxy every client shares its address: raise it there.
    public var maxConnectionsPerPeer: Int = 256
    /// Bytes of request metadata (keys plus values) per call.
    public var maxMetadataBytes: Int = 16 * 1024
    /// A connection with no call in flight and no frame for this long is closed.
    public var idleTimeoutSeconds: Double = 300
    /// A connection must finish its preface, and each frame from that frame's
    /// first byte, within this.
    public var frameTimeoutSeconds: Double = 10
    /// A frame still incomplete after 2 s must have arrived at least this fast
    /// (bytes per second, averaged from its first byte): a peer trickling a
    /// frame byte by byte is closed long before the frame timeout.
    public var minReceiveBytesPerSecond: Int = 1024
    /// A connection must begin its first call within this after it opened;
    /// one that only sent the preface (or only pings) is told to go away.
    public var firstCallTimeoutSeconds: Double = 10
    /// Response bytes buffered per connection before the server stops reading
    /// from it (and streaming handlers wait): backpressure on a peer that does not read.
    public var maxBufferedBytesPerConnection: Int = 8 * 1024 * 1024
    /// How long graceful shutdown lets in-flight calls finish.
    public var shutdownGraceSeconds: Double = 10
    /// Answers plain HTTP `GET`/`HEAD` requests on the RPC port (health probes, metrics): one
    /// request per connection, closed after the answer. Without it, HTTP gets a 400.
    public var httpHandler: RPCHTTPHandler?
    /// TLS on the port: every peer must handshake first (HTTP probes then come as HTTPS).
    /// Certificates are loaded by ``RPCServer/start()``, which fails on a bad file.
    public var tls: RPCServerTLS?

    public init() {}
}

/// One HTTP/1.x request on the RPC port (see ``RPCServerConfiguration/httpHandler``).
public struct RPCHTTPRequest: Sendable {
    public let method: String
    /// The path, without the query.
    public let path: String
}

public struct RPCHTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }
}

/// Called on the connection's queue; must not block. Answer by calling `respond` once, from any
/// thread.
public typealias RPCHTTPHandler = @Sendable (RPCHTTPRequest, _ respond: @escaping @Sendable (RPCHTTPResponse) -> Void) -> Void
