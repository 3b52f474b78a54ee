public import RPC
public import SessionAPI
import SessionCore

/// `sessions.v1.PermissionService`: rep permissions.
public struct PermissionServiceProvider: SessionsV1.PermissionService.ServiceProtocol {
    let backend: SessionBackend

    public init(backend: SessionBackend) { self.backend = backend }

    private func response(_ rep: SessionCore.Rep) -> SessionsV1.PermissionsResponse {
        var r = SessionsV1.PermissionsResponse()
        r.repId = rep.id
        r.permissions = rep.permissions.sorted { $0.rawValue < $1.rawValue }.map(SessionsV1.Permission.init)
        return r
    }

    public func grantPermission(request: SessionsV1.PermissionChangeRequest, context: RPCServerContext) async throws -> SessionsV1.PermissionsResponse {
        let permission = try request.permission.domain()
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.grantPermission(permission, to: request.repId, by: actor, at: now, in: &repo).rep)
        }
    }

    public func revokePermission(request: SessionsV1.PermissionChangeRequest, context: RPCServerContext) async throws -> SessionsV1.PermissionsResponse {
        let permission = try request.permission.domain()
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.revokePermission(permission, from: request.repId, by: actor, at: now, in: &repo).rep)
        }
    }

    public func listPermissions(request: SessionsV1.ListPermissionsRequest, context: RPCServerContext) async throws -> SessionsV1.PermissionsResponse {
        try await backend.read(context) { engine, actor, repo in
            var r = SessionsV1.PermissionsResponse()
            r.repId = request.repId
            r.permissions = try engine.permissions(of: request.repId, by: actor, in: repo).map(SessionsV1.Permission.init)
            return r
        }
    }

    public func checkPermission(request: SessionsV1.CheckPermissionRequest, context: RPCServerContext) async throws -> SessionsV1.CheckPermissionResponse {
        try await backend.read(context) { engine, actor, repo in
            let check = try engine.checkPermissions(repId: request.repId, channelId: request.channelId, by: actor, in: repo)
            var r = SessionsV1.CheckPermissionResponse()
            r.allowed = check.allowed
            r.missing = check.missing.map(SessionsV1.Permission.init)
            return r
        }
    }
}
