public import RPC
public import SessionAPI
import Synchronization

/// `grpc.health.v1.Health`: serving status per service, "" for the whole server.
public final class HealthProvider: GrpcHealthV1.Health.ServiceProtocol {
    public typealias Status = GrpcHealthV1.HealthCheckResponse.ServingStatus

    private let state = Mutex(State())

    private struct State {
        var statuses: [String: Status] = ["": .serving]
        var watchers: [UInt64: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher: UInt64 = 0
    }

    public init(services: [String] = []) {
        state.withLock { s in for name in services { s.statuses[name] = .serving } }
    }

    /// Sets a service's status and tells its watchers.
    public func setStatus(_ status: Status, for service: String = "") {
        let watchers = state.withLock { s -> [AsyncStream<Status>.Continuation] in
            s.statuses[service] = status
            return s.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for w in watchers { w.yield(status) }
    }

    /// A service's status, nil if unknown.
    public func status(of service: String) -> Status? { state.withLock { $0.statuses[service] } }

    /// Every service with a status ("" included).
    public var serviceNames: [String] { state.withLock { Array($0.statuses.keys) } }

    /// Marks every service NOT_SERVING (graceful shutdown).
    public func enterShutdown() {
        let names = state.withLock { Array($0.statuses.keys) }
        for name in names { setStatus(.notServing, for: name) }
    }

    public func executionPolicy(for method: RPCMethodDescriptor) -> RPCExecutionPolicy { .inline }

    public func check(request: GrpcHealthV1.HealthCheckRequest, context: RPCServerContext) throws -> GrpcHealthV1.HealthCheckResponse {
        guard let status = state.withLock({ $0.statuses[request.service] }) else {
            throw RPCError(.notFound, "service '\(request.service)' is unknown to the health service")
        }
        var response = GrpcHealthV1.HealthCheckResponse()
        response.status = status
        return response
    }

    public func watch(
        request: GrpcHealthV1.HealthCheckRequest, writer: RPCServerStreamWriter<GrpcHealthV1.HealthCheckResponse>, context: RPCServerContext
    ) async throws {
        let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s -> UInt64 in
            s.nextWatcher += 1
            s.watchers[s.nextWatcher] = (request.service, continuation)
            continuation.yield(s.statuses[request.service] ?? .serviceUnknown)
            return s.nextWatcher
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        context.onCancel { continuation.finish() }
        var last: Status?
        for await status in stream {
            guard status != last else { continue }
            last = status
            var response = GrpcHealthV1.HealthCheckResponse()
            response.status = status
            try await writer.write(response)
        }
        try context.checkCancellation()
    }
}
