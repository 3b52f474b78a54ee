public import RPC
public import SessionAPI
import SessionCore

/// `sessions.v1.RepService`: reps, presence and workload.
public struct RepServiceProvider: SessionsV1.RepService.ServiceProtocol {
    let backend: SessionBackend

    public init(backend: SessionBackend) { self.backend = backend }

    private func response(_ rep: SessionCore.Rep) -> SessionsV1.RepResponse {
        var r = SessionsV1.RepResponse()
        r.rep = SessionsV1.Rep(rep)
        return r
    }

    public func createRep(request: SessionsV1.RepRequest, context: RPCServerContext) async throws -> SessionsV1.RepResponse {
        guard let rep = request.rep else { throw RPCError(.invalidArgument, "rep is required") }
        let permissions = Set(try rep.permissions.map { try $0.domain() })
        let presence = rep.presence == .unspecified ? .offline : (rep.presence.domain() ?? .offline)
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.createRep(
                id: rep.id, displayName: rep.displayName, capacity: Int(rep.capacity),
                permissions: permissions, presence: presence, by: actor, at: now, in: &repo).rep)
        }
    }

    public func updateRep(request: SessionsV1.RepRequest, context: RPCServerContext) async throws -> SessionsV1.RepResponse {
        guard let rep = request.rep else { throw RPCError(.invalidArgument, "rep is required") }
        let update = RepUpdate(
            displayName: rep.displayName.isEmpty ? nil : rep.displayName,
            capacity: rep.capacity == 0 ? nil : Int(rep.capacity))
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.updateRep(id: rep.id, update, by: actor, at: now, in: &repo).rep)
        }
    }

    public func getRep(request: SessionsV1.GetRepRequest, context: RPCServerContext) async throws -> SessionsV1.RepResponse {
        try await backend.read(context) { engine, actor, repo in response(try engine.getRep(request.repId, by: actor, in: repo)) }
    }

    public func listReps(request: SessionsV1.ListRepsRequest, context: RPCServerContext) async throws -> SessionsV1.ListRepsResponse {
        let wanted = request.presence.domain()
        return try await backend.read(context) { engine, actor, repo in
            var reps: [SessionCore.Rep] = []
            var token: String?
            repeat {
                let page = try engine.listReps(pageSize: SessionEngine.maxPageSize, pageToken: token, by: actor, in: repo)
                reps += page.items
                token = page.nextPageToken
            } while token != nil
            var r = SessionsV1.ListRepsResponse()
            r.reps = reps.filter { wanted == nil || $0.presence == wanted }.map(SessionsV1.Rep.init)
            return r
        }
    }

    public func setPresence(request: SessionsV1.SetPresenceRequest, context: RPCServerContext) async throws -> SessionsV1.RepResponse {
        guard let presence = request.presence.domain() else {
            throw RPCError(.invalidArgument, "presence is required (AVAILABLE, BUSY or OFFLINE)")
        }
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.setPresence(repId: request.repId, presence, by: actor, at: now, in: &repo).rep)
        }
    }

    public func getWorkload(request: SessionsV1.GetRepRequest, context: RPCServerContext) async throws -> SessionsV1.WorkloadResponse {
        try await backend.read(context) { engine, actor, repo in
            let workload = try engine.workload(repId: request.repId, by: actor, in: repo)
            var r = SessionsV1.WorkloadResponse()
            r.rep = SessionsV1.Rep(workload.rep)
            r.capacity = Int32(workload.capacity)
            r.used = Int32(workload.used)
            // The wire's `free` is capacity minus used: negative after a status-based
            // return over capacity (sessions.proto), unlike the engine's routing
            // headroom `Workload.free`, which stops at 0.
            r.free = Int32(workload.capacity - workload.used)
            r.activeSessions = workload.activeSessions.map(SessionsV1.Session.init)
            r.otherSessions = (try repo.sessions(repId: request.repId, status: .new) + repo.sessions(repId: request.repId, status: .inactive))
                .map(SessionsV1.Session.init)
            return r
        }
    }
}
