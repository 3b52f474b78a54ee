public import RPC
public import SessionAPI
import SessionCore
import SessionStorage

/// `sessions.v1.TokenService`: bearer tokens (admin), and who am I.
public struct TokenServiceProvider: SessionsV1.TokenService.ServiceProtocol {
    let backend: SessionBackend

    public init(backend: SessionBackend) { self.backend = backend }

    /// An admin (tokens of its tenant) or an operator (operator tokens).
    private func requireAdmin(_ context: RPCServerContext, to what: String) throws(RPCError) -> Principal {
        let principal = try backend.authenticate(context)
        guard principal.token.role == .admin || principal.token.role == .operator else {
            throw RPCError(.permissionDenied, "only an admin may \(what); this token's role is \(principal.token.role.rawValue)")
        }
        return principal
    }

    static func info(_ token: APIToken) -> SessionsV1.TokenInfo {
        var i = SessionsV1.TokenInfo()
        i.id = TokenAuthenticator.tokenID(hash: token.hash)
        i.name = token.name
        i.role = SessionsV1.Role(protoName: token.role.rawValue) ?? .unspecified
        i.repId = token.repId ?? ""
        i.createdAtMs = token.createdAt.millisecondsSinceEpoch
        i.revoked = !token.isActive
        i.tenantId = token.tenantId ?? ""
        return i
    }

    /// A new token with a fresh secret, stored; `tenant` nil for an operator token.
    static func issue(
        backend: SessionBackend, role: APIToken.Role, tenant: String?, repId: String?, name: String
    ) async throws(RPCError) -> SessionsV1.IssueTokenResponse {
        let secret = TokenAuthenticator.newSecret()
        let token = APIToken(
            hash: TokenAuthenticator.hash(secret: secret), role: role, tenantId: tenant, repId: role == .rep ? repId : nil,
            name: name, createdAt: backend.clock.now())
        let store = backend.store
        try await backend.offload { () throws(RPCError) in
            do { try store.insertToken(token) } catch { throw backend.status(for: error) }
        }
        var r = SessionsV1.IssueTokenResponse()
        r.info = Self.info(token)
        r.token = secret
        return r
    }

    public func issueToken(request: SessionsV1.IssueTokenRequest, context: RPCServerContext) async throws -> SessionsV1.IssueTokenResponse {
        let principal = try requireAdmin(context, to: "issue tokens")
        guard !request.name.isEmpty, request.name.count <= 128 else {
            throw RPCError(.invalidArgument, "name is required (1 to 128 characters)")
        }
        guard let role = APIToken.Role(rawValue: request.role.protoName) else {
            throw RPCError(.invalidArgument, "role is required (SERVICE, REP or ADMIN; OPERATOR for an operator)")
        }
        if principal.token.role == .operator {
            // An operator acts in no tenant: a tenant's first admin token comes from TenantService.
            guard role == .operator else {
                throw RPCError(.permissionDenied, "an OPERATOR token issues OPERATOR tokens only; a tenant's tokens are issued by its admins (TenantService/IssueTenantAdminToken gives a tenant an admin token)")
            }
            guard request.repId.isEmpty else { throw RPCError(.invalidArgument, "only REP tokens carry a rep_id") }
            return try await Self.issue(backend: backend, role: .operator, tenant: nil, repId: nil, name: request.name)
        }
        guard role != .operator else {
            throw RPCError(.permissionDenied, "only an operator may issue OPERATOR tokens")
        }
        if role == .rep {
            guard !request.repId.isEmpty else { throw RPCError(.invalidArgument, "a REP token needs rep_id") }
            do { try IdentifierRules.validateResourceID(request.repId, what: "rep id") } catch { throw backend.status(for: error) }
            let exists = try await backend.read(context) { _, _, repo in try repo.rep(id: request.repId) != nil }
            guard exists else { throw RPCError(.notFound, "rep \(request.repId) does not exist") }
        } else if !request.repId.isEmpty {
            throw RPCError(.invalidArgument, "only REP tokens carry a rep_id")
        }
        return try await Self.issue(backend: backend, role: role, tenant: principal.token.tenantId, repId: request.repId, name: request.name)
    }

    /// The tokens an admin manages: its tenant's (an operator's: the operator tokens).
    private static func manages(_ principal: Principal, _ token: APIToken) -> Bool {
        principal.token.role == .operator ? token.role == .operator : token.tenantId == principal.token.tenantId && token.role != .operator
    }

    public func listTokens(request: SessionsV1.ListTokensRequest, context: RPCServerContext) async throws -> SessionsV1.ListTokensResponse {
        let principal = try requireAdmin(context, to: "list tokens")
        var r = SessionsV1.ListTokensResponse()
        let store = backend.store
        r.tokens = try await backend.offload { () throws(RPCError) in
            do { return try store.listTokens().filter { Self.manages(principal, $0) }.map(Self.info) } catch { throw self.backend.status(for: error) }
        }
        return r
    }

    public func revokeToken(request: SessionsV1.RevokeTokenRequest, context: RPCServerContext) async throws -> SessionsV1.TokenInfo {
        let principal = try requireAdmin(context, to: "revoke tokens")
        guard !request.id.isEmpty, request.id.utf8.count <= TokenAuthenticator.maxTokenIDLength else {
            throw RPCError(.invalidArgument, "token id must be 1 to \(TokenAuthenticator.maxTokenIDLength) characters (as ListTokens shows it)")
        }
        let backend = self.backend
        return try await backend.offload { () throws(RPCError) in
            do {
                // Another tenant's token is not found: its existence is not this caller's to know.
                guard let token = try backend.store.listTokens().first(where: {
                    Self.manages(principal, $0) && TokenAuthenticator.tokenID(hash: $0.hash) == request.id
                }) else {
                    throw RPCError(.notFound, "token \(request.id) does not exist")
                }
                let revoked = token.isActive ? try backend.store.revokeToken(hash: token.hash, at: backend.clock.now()) : token
                backend.auth.invalidate()
                return Self.info(revoked)
            } catch {
                throw backend.status(for: error)
            }
        }
    }

    public func whoAmI(request: SessionsV1.WhoAmIRequest, context: RPCServerContext) async throws -> SessionsV1.TokenInfo {
        Self.info(try backend.authenticate(context).token)
    }
}
