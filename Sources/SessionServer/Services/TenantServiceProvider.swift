public import RPC
public import SessionAPI
import SessionCore
public import SessionStorage

/// Where tenants' data lives and who serves it: the daemon (a database file per tenant on
/// SQLite, a schema per tenant on PostgreSQL). Every method may block.
public protocol TenantHost: Sendable {
    /// Creates the tenant's storage if it does not exist (idempotent).
    func prepare(tenant id: String) throws
    /// Serves the (enabled) tenant: loads its partition here, or lets an instance take it.
    func serve(_ tenant: TenantRecord) throws
    /// Stops serving a tenant that was disabled (its calls refused from now on, its partition
    /// stopped and written out).
    func stop(tenant id: String)
}

/// `sessions.v1.TenantService`: the tenant registry, for operator tokens only.
public struct TenantServiceProvider: SessionsV1.TenantService.ServiceProtocol {
    let backend: SessionBackend
    let host: any TenantHost
    static let defaultAdminTokenName = "tenant-admin"

    public init(backend: SessionBackend, host: any TenantHost) {
        self.backend = backend
        self.host = host
    }

    private func requireOperator(_ context: RPCServerContext, to what: String) throws(RPCError) {
        let principal = try backend.authenticate(context)
        guard principal.token.role == .operator else {
            throw RPCError(.permissionDenied, "only an OPERATOR token may \(what); this token's role is \(principal.token.role.rawValue)")
        }
    }

    static func message(_ t: TenantRecord) -> SessionsV1.Tenant {
        var m = SessionsV1.Tenant()
        m.id = t.id
        m.displayName = t.displayName
        m.createdAtMs = t.createdAt.millisecondsSinceEpoch
        m.disabled = !t.isEnabled
        m.disabledAtMs = t.disabledAt?.millisecondsSinceEpoch ?? 0
        return m
    }

    private func checkID(_ id: String) throws(RPCError) {
        do { try IdentifierRules.validateTenantID(id) } catch { throw backend.status(for: error) }
    }

    private func find(_ id: String) async throws(RPCError) -> TenantRecord {
        try checkID(id)
        let store = backend.store
        let backend = self.backend
        let found = try await backend.offload { () throws(RPCError) -> TenantRecord? in
            do { return try store.tenants().first { $0.id == id } } catch { throw backend.status(for: error) }
        }
        guard let found else { throw RPCError(.notFound, "tenant \(id) does not exist") }
        return found
    }

    private static func tokenName(_ name: String) throws(RPCError) -> String {
        guard name.count <= 128 else { throw RPCError(.invalidArgument, "admin token name must be at most 128 characters") }
        return name.isEmpty ? defaultAdminTokenName : name
    }

    public func createTenant(request: SessionsV1.CreateTenantRequest, context: RPCServerContext) async throws -> SessionsV1.CreateTenantResponse {
        try requireOperator(context, to: "create tenants")
        try checkID(request.id)
        guard request.displayName.count <= 128 else { throw RPCError(.invalidArgument, "display_name must be at most 128 characters") }
        let tokenName = try Self.tokenName(request.adminTokenName)
        let record = TenantRecord(id: request.id, displayName: request.displayName.isEmpty ? request.id : request.displayName, createdAt: backend.clock.now())
        let (store, host, backend) = (backend.store, host, backend)
        try await backend.offload { () throws(RPCError) in
            do {
                // Storage first (idempotent): a registered tenant always has somewhere to live.
                try host.prepare(tenant: record.id)
                try store.insertTenant(record)
                try host.serve(record)
            } catch {
                throw backend.status(for: error)
            }
        }
        var r = SessionsV1.CreateTenantResponse()
        r.tenant = Self.message(record)
        r.adminToken = try await TokenServiceProvider.issue(backend: backend, role: .admin, tenant: record.id, repId: nil, name: tokenName)
        return r
    }

    public func getTenant(request: SessionsV1.TenantRequest, context: RPCServerContext) async throws -> SessionsV1.Tenant {
        try requireOperator(context, to: "read tenants")
        return Self.message(try await find(request.id))
    }

    public func listTenants(request: SessionsV1.ListTenantsRequest, context: RPCServerContext) async throws -> SessionsV1.ListTenantsResponse {
        try requireOperator(context, to: "list tenants")
        let (store, backend) = (backend.store, backend)
        var r = SessionsV1.ListTenantsResponse()
        r.tenants = try await backend.offload { () throws(RPCError) in
            do { return try store.tenants().map(Self.message) } catch { throw backend.status(for: error) }
        }
        return r
    }

    public func disableTenant(request: SessionsV1.TenantRequest, context: RPCServerContext) async throws -> SessionsV1.Tenant {
        try requireOperator(context, to: "disable tenants")
        _ = try await find(request.id)
        let (store, host, backend) = (backend.store, host, backend)
        let now = backend.clock.now()
        return try await backend.offload { () throws(RPCError) -> SessionsV1.Tenant in
            do {
                let tenant = try store.setTenantDisabled(request.id, at: now)
                // Refused from now on (each call checks, cached tokens too), served nowhere here.
                host.stop(tenant: request.id)
                return Self.message(tenant)
            } catch {
                throw backend.status(for: error)
            }
        }
    }

    public func enableTenant(request: SessionsV1.TenantRequest, context: RPCServerContext) async throws -> SessionsV1.Tenant {
        try requireOperator(context, to: "enable tenants")
        _ = try await find(request.id)
        let (store, host, backend) = (backend.store, host, backend)
        return try await backend.offload { () throws(RPCError) -> SessionsV1.Tenant in
            do {
                let tenant = try store.setTenantDisabled(request.id, at: nil)
                try host.serve(tenant)
                backend.markDisabled(request.id, false)
                return Self.message(tenant)
            } catch {
                throw backend.status(for: error)
            }
        }
    }

    public func issueTenantAdminToken(request: SessionsV1.IssueTenantAdminTokenRequest, context: RPCServerContext) async throws -> SessionsV1.IssueTokenResponse {
        try requireOperator(context, to: "issue a tenant's admin token")
        let tenant = try await find(request.tenantId)
        return try await TokenServiceProvider.issue(backend: backend, role: .admin, tenant: tenant.id, repId: nil, name: try Self.tokenName(request.name))
    }
}
