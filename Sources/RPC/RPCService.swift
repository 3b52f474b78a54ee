/// Where a unary handler runs.
public enum RPCExecutionPolicy: Sendable, Hashable {
    /// On the connection's serial queue, right where the request was
    /// decoded: no thread hop. Only for handlers that never block and finish
    /// in microseconds (echo, health); anything else would stall the
    /// connection's other calls.
    case inline
    /// On the shared handler pool: may block (database, disk) without
    /// stalling any connection or call.
    case pool
}

/// A service a server hosts: a name and its method handlers.
///
/// Generated `ServiceProtocol`s refine it and supply both requirements;
/// implementations may override ``executionPolicy(for:)``.
public protocol RPCService: Sendable {
    /// Fully qualified service name, `package.Service`.
    var serviceName: String { get }
    /// One handler per implemented method.
    func methodHandlers() -> [RPCMethodHandler]
    /// Where each unary method runs; `.pool` unless overridden.
    func executionPolicy(for method: RPCMethodDescriptor) -> RPCExecutionPolicy
    /// A handler that serves `method` instead of the generated one (for example a deferred one,
    /// `RPCMethodHandler(deferredUnary:)`); nil, the default, keeps the generated handler.
    func replacementHandler(for method: RPCMethodDescriptor) -> RPCMethodHandler?
}

extension RPCService {
    public func executionPolicy(for method: RPCMethodDescriptor) -> RPCExecutionPolicy { .pool }
    public func replacementHandler(for method: RPCMethodDescriptor) -> RPCMethodHandler? { nil }
}
