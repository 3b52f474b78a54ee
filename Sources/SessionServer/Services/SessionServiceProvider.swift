public import RPC
public import SessionAPI
import ProtoRuntime
import SessionCore

/// `sessions.v1.SessionService`: the session lifecycle.
public struct SessionServiceProvider: SessionsV1.SessionService.ServiceProtocol {
    let backend: SessionBackend
    /// `ListSessionsRequest.page_size` 0 means 100 (sessions.proto).
    static let defaultListPageSize = 100

    public init(backend: SessionBackend) { self.backend = backend }

    public func createSession(request: SessionsV1.CreateSessionRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        SessionsV1.SessionResponse(try await backend.write(context, Self.createSession(request)))
    }

    public func getSession(request: SessionsV1.GetSessionRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        try await backend.read(context) { engine, actor, repo in
            SessionsV1.SessionResponse(try engine.getSession(request.sessionId, by: actor, in: repo))
        }
    }

    public func listSessions(request: SessionsV1.ListSessionsRequest, context: RPCServerContext) async throws -> SessionsV1.ListSessionsResponse {
        let filter = SessionFilter(
            status: request.status.domain(),
            repId: request.repId.isEmpty ? nil : request.repId,
            channelId: request.channelId.isEmpty ? nil : request.channelId,
            conversationId: request.conversationId.isEmpty ? nil : request.conversationId)
        return try await backend.read(context) { engine, actor, repo in
            let page = try engine.listSessions(
                filter, pageSize: request.pageSize == 0 ? Self.defaultListPageSize : Int(request.pageSize), pageToken: request.pageToken.isEmpty ? nil : request.pageToken,
                by: actor, in: repo)
            var response = SessionsV1.ListSessionsResponse()
            response.sessions = page.items.map(SessionsV1.Session.init)
            response.nextPageToken = page.nextPageToken ?? ""
            return response
        }
    }

    public func postCustomerMessage(request: SessionsV1.PostCustomerMessageRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        SessionsV1.SessionResponse(try await backend.write(context, Self.postCustomerMessage(request)))
    }

    public func postRepMessage(request: SessionsV1.PostRepMessageRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        SessionsV1.SessionResponse(try await backend.write(context, Self.postRepMessage(request)))
    }

    public func markInactive(request: SessionsV1.MarkInactiveRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        SessionsV1.SessionResponse(try await backend.write(context, Self.markInactive(request)))
    }

    public func endSession(request: SessionsV1.EndSessionRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        SessionsV1.SessionResponse(try await backend.write(context, Self.endSession(request)))
    }

    // MARK: The state changes, each one body for both ways in

    // The engine runs on the owner; the response is built off it (after the await, or on the
    // connection's queue for a deferred call).

    static func createSession(_ request: SessionsV1.CreateSessionRequest) -> SessionBackend.WriteBody<SessionOutcome> {
        { engine, actor, now, repo in
            try engine.createSession(
                conversationId: request.conversationId, channelId: request.channelId,
                firstMessage: incomingMessage(id: request.messageId, text: request.text),
                by: actor, at: now, in: &repo)
        }
    }

    static func postCustomerMessage(_ request: SessionsV1.PostCustomerMessageRequest) -> SessionBackend.WriteBody<SessionOutcome> {
        { engine, actor, now, repo in
            try engine.postCustomerMessage(
                IncomingMessage(messageId: request.messageId, text: request.text),
                to: .conversation(id: request.conversationId, channelId: request.channelId),
                by: actor, at: now, in: &repo)
        }
    }

    static func postRepMessage(_ request: SessionsV1.PostRepMessageRequest) -> SessionBackend.WriteBody<SessionOutcome> {
        { engine, actor, now, repo in
            try engine.postRepMessage(
                IncomingMessage(messageId: request.messageId, text: request.text), sessionId: request.sessionId,
                by: actor, at: now, in: &repo)
        }
    }

    static func markInactive(_ request: SessionsV1.MarkInactiveRequest) -> SessionBackend.WriteBody<SessionOutcome> {
        { engine, actor, now, repo in try engine.markInactive(sessionId: request.sessionId, by: actor, at: now, in: &repo) }
    }

    static func endSession(_ request: SessionsV1.EndSessionRequest) -> SessionBackend.WriteBody<SessionOutcome> {
        { engine, actor, now, repo in try engine.endSession(sessionId: request.sessionId, by: actor, at: now, in: &repo) }
    }

    /// The busiest calls skip the task of an async handler: started on the connection's queue,
    /// run on the owner, answered from the journal's callback (one thread hop fewer each way).
    public func replacementHandler(for method: RPCMethodDescriptor) -> RPCMethodHandler? {
        typealias M = SessionsV1.SessionService.Method
        switch method {
        case M.createSession: return deferred(method, Self.createSession)
        case M.postCustomerMessage: return deferred(method, Self.postCustomerMessage)
        case M.postRepMessage: return deferred(method, Self.postRepMessage)
        case M.markInactive: return deferred(method, Self.markInactive)
        case M.endSession: return deferred(method, Self.endSession)
        default: return nil
        }
    }

    private func deferred<Request: ProtoCMessage>(
        _ method: RPCMethodDescriptor, _ body: @escaping @Sendable (Request) -> SessionBackend.WriteBody<SessionOutcome>
    ) -> RPCMethodHandler {
        let backend = self.backend
        return RPCMethodHandler(deferredUnary: method) { (request: Request, context, respond: RPCResponder<SessionsV1.SessionResponse>) in
            backend.write(context, answer: respond, map: SessionsV1.SessionResponse.init, body(request))
        }
    }

    public func startBusinessInitiated(request: SessionsV1.StartBusinessInitiatedRequest, context: RPCServerContext) async throws -> SessionsV1.SessionResponse {
        try await backend.write(context) { engine, actor, now, repo in
            // A retry of a call whose first message is already recorded changes
            // nothing and answers replayed (SessionResponse.replayed), instead of
            // FAILED_PRECONDITION for the session the first attempt opened.
            if let first = incomingMessage(id: request.messageId, text: request.text), !first.messageId.isEmpty,
               actor.kind != .rep || actor.id == request.repId,
               let stored = try repo.message(channelId: request.channelId, id: first.messageId) {
                guard stored.sender == .rep, stored.text == first.text,
                      let earlier = try repo.session(id: stored.sessionId),
                      earlier.conversationId == request.conversationId, earlier.channelId == request.channelId
                else {
                    throw RPCError(.alreadyExists, "message id \(first.messageId) was already used for a different message")
                }
                if actor.kind == .rep, earlier.repId != actor.id {
                    throw RPCError(.permissionDenied, "rep \(actor.id) may not read session \(earlier.id); it is owned by \(earlier.repId.map { "rep \($0)" } ?? "no rep")")
                }
                var replay = SessionsV1.SessionResponse(earlier)
                replay.replayed = true
                return replay
            }
            var outcome = try engine.startBusinessInitiated(
                repId: request.repId, conversationId: request.conversationId, channelId: request.channelId,
                by: actor, at: now, in: &repo)
            if let first = incomingMessage(id: request.messageId, text: request.text) {
                // The first outbound message is the owning rep's, whoever started the session.
                let posted = try engine.postRepMessage(first, sessionId: outcome.session.id, by: .rep(request.repId), at: now, in: &repo)
                outcome.session = posted.session
            }
            return SessionsV1.SessionResponse(outcome)
        }
    }
}
