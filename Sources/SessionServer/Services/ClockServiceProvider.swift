public import RPC
public import SessionAPI
import SessionStorage

/// `sessions.v1.ClockService`: read the server's clock; with `--test-clock`,
/// let an admin move it forward (like payment APIs' test clocks).
public struct ClockServiceProvider: SessionsV1.ClockService.ServiceProtocol {
    let backend: SessionBackend
    let sweeper: TimerSweeper
    /// The most one call may advance: 30 days.
    static let maxAdvanceMs: Int64 = 30 * 24 * 3_600_000

    public init(backend: SessionBackend, sweeper: TimerSweeper) {
        self.backend = backend
        self.sweeper = sweeper
    }

    private func response() -> SessionsV1.ClockResponse {
        var r = SessionsV1.ClockResponse()
        r.nowMs = backend.clock.now().millisecondsSinceEpoch
        r.testClock = backend.clock.isTestClock
        return r
    }

    public func getTime(request: SessionsV1.GetTimeRequest, context: RPCServerContext) async throws -> SessionsV1.ClockResponse {
        _ = try backend.authenticate(context)
        return response()
    }

    public func advanceClock(request: SessionsV1.AdvanceClockRequest, context: RPCServerContext) async throws -> SessionsV1.ClockResponse {
        let principal = try backend.authenticate(context)
        // The clock is the whole process's: an operator's, or the default tenant's admin.
        guard principal.token.role == .operator || (principal.token.role == .admin && principal.token.tenantId == APIToken.defaultTenant) else {
            throw RPCError(.permissionDenied, "only an operator or an admin of the default tenant may advance the clock (it is every tenant's)")
        }
        guard backend.clock.isTestClock else {
            throw RPCError(.failedPrecondition, "the clock can be advanced only when sessiond runs with --test-clock")
        }
        guard request.byMs > 0, request.byMs <= Self.maxAdvanceMs else {
            throw RPCError(.invalidArgument, "by_ms must be between 1 and \(Self.maxAdvanceMs) (30 days)")
        }
        do { try backend.clock.advance(byMilliseconds: request.byMs) } catch { throw backend.status(for: error) }
        try await backend.fireDueTimers(sweeper: sweeper)
        return response()
    }
}
