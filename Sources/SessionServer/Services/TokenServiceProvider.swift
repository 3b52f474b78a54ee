public import RPC
public import SessionAPI
import SessionCore
import SessionStorage

/// `sessions.v1.TokenService`: bearer tokens (admin), and who am I.
public struct TokenServiceProvider: SessionsV1.TokenService.ServiceProtocol {
    let backend: SessionBackend

    public init(backend: SessionBackend) { self.backend = backend }

    private func requireAdmin(_ context: RPCServerContext, to what: String) throws(RPCError) -> Principal {
        let principal = try backend.auth.authenticate(context)
        guard principal.token.role == .admin else {
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
        return i
    }

    public func issueToken(request: SessionsV1.IssueTokenRequest, context: RPCServerContext) async throws -> SessionsV1.IssueTokenResponse {
        _ = try requireAdmin(context, to: "issue tokens")
        guard !request.name.isEmpty, request.name.count <= 128 else {
            throw RPCError(.invalidArgument, "name is required (1 to 128 characters)")
        }
        guard let role = APIToken.Role(rawValue: request.role.protoName) else {
            throw RPCError(.invalidArgument, "role is required (SERVICE, REP or ADMIN)")
        }
        if role == .rep {
            guard !request.repId.isEmpty else { throw RPCError(.invalidArgument, "a REP token needs rep_id") }
            do { try IdentifierRules.validateResourceID(request.repId, what: "rep id") } catch { throw backend.status(for: error) }
            let exists = try await backend.read(context) { _, _, repo in try repo.rep(id: request.repId) != nil }
            guard exists else { throw RPCError(.notFound, "rep \(request.repId) does not exist") }
        } else if !request.repId.isEmpty {
            throw RPCError(.invalidArgument, "only REP tokens carry a rep_id")
        }
        let secret = TokenAuthenticator.newSecret()
        let token = APIToken(
            hash: TokenAuthenticator.hash(secret: secret), role: role, repId: role == .rep ? request.repId : nil,
            name: request.name, createdAt: backend.clock.now())
        let store = backend.store
        try await backend.offload { () throws(RPCError) in
            do { try store.insertToken(token) } catch { throw self.backend.status(for: error) }
        }
        var r = SessionsV1.IssueTokenResponse()
        r.info = Self.info(token)
        r.token = secret
        return r
    }

    public func listTokens(request: SessionsV1.ListTokensRequest, context: RPCServerContext) async throws -> SessionsV1.ListTokensResponse {
        _ = try requireAdmin(context, to: "list tokens")
        var r = SessionsV1.ListTokensResponse()
        let store = backend.store
        r.tokens = try await backend.offload { () throws(RPCError) in
            do { return try store.listTokens().map(Self.info) } catch { throw self.backend.status(for: error) }
        }
        return r
    }

    public func revokeToken(request: SessionsV1.RevokeTokenRequest, context: RPCServerContext) async throws -> SessionsV1.TokenInfo {
        _ = try requireAdmin(context, to: "revoke tokens")
        guard !request.id.isEmpty, request.id.utf8.count <= TokenAuthenticator.maxTokenIDLength else {
            throw RPCError(.invalidArgument, "token id must be 1 to \(TokenAuthenticator.maxTokenIDLength) characters (as ListTokens shows it)")
        }
        let backend = self.backend
        return try await backend.offload { () throws(RPCError) in
            do {
                guard let token = try backend.store.listTokens().first(where: { TokenAuthenticator.tokenID(hash: $0.hash) == request.id }) else {
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
        Self.info(try backend.auth.authenticate(context).token)
    }
}
