/// The one error type at the RPC boundary: a status code, a UTF-8 message
/// and optional trailing metadata.
///
/// Handlers throw it to end a call with a status; any other error thrown by a
/// handler becomes `INTERNAL` without leaking its description to the caller.
/// Clients receive it for every non-OK status.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: RPCStatusCode
    public var message: String
    public var metadata: RPCMetadata

    public init(_ code: RPCStatusCode, _ message: String, metadata: RPCMetadata = [:]) {
        self.code = code
        self.message = message
        self.metadata = metadata
    }

    public var description: String { message.isEmpty ? code.name : "\(code.name): \(message)" }
}
