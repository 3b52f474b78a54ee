/// Identifies one RPC method: `/package.Service/Method`.
public struct RPCMethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// How many messages each side sends.
    public enum Kind: Sendable, Hashable {
        /// One request, one response.
        case unary
        /// One request, any number of responses.
        case serverStreaming
    }

    /// Fully qualified service name, `package.Service`.
    public let service: String
    /// Method name, `Method`.
    public let method: String
    public let kind: Kind
    /// `/package.Service/Method`, as sent on the wire.
    public let path: String

    public init(service: String, method: String, kind: Kind) {
        self.service = service
        self.method = method
        self.kind = kind
        self.path = "/\(service)/\(method)"
    }

    public var description: String { path }
}
