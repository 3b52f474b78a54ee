import RPC
import SessionAPI
import SessionClient
import Testing

/// Every RPC that takes an id refuses an over-long one with INVALID_ARGUMENT
/// before looking anything up, and no answer quotes a caller's value whole.
@Suite("Identifier limits")
struct IdentifierLimitScenarioTests {
    /// 1 MB: far over every id limit, well under the frame limit.
    static let huge = String(repeating: "x", count: 1_000_000)

    /// One call per RPC field that names an object, each with `id` in that field.
    static func calls(_ c: SessionClient, _ id: String) -> [(String, () async throws -> Void)] {
        [
            ("GetSession", { var r = SessionsV1.GetSessionRequest(); r.sessionId = id; _ = try await c.sessions.getSession(r) }),
            ("MarkInactive", { var r = SessionsV1.MarkInactiveRequest(); r.sessionId = id; _ = try await c.sessions.markInactive(r) }),
            ("EndSession", { var r = SessionsV1.EndSessionRequest(); r.sessionId = id; _ = try await c.sessions.endSession(r) }),
            ("PostRepMessage", {
                var r = SessionsV1.PostRepMessageRequest(); r.sessionId = id; r.messageId = "m"; r.text = "t"
                _ = try await c.sessions.postRepMessage(r)
            }),
            ("PostRepMessage.message_id", {
                var r = SessionsV1.PostRepMessageRequest(); r.sessionId = "s"; r.messageId = id; r.text = "t"
                _ = try await c.sessions.postRepMessage(r)
            }),
            ("PostCustomerMessage.conversation_id", {
                var r = SessionsV1.PostCustomerMessageRequest(); r.conversationId = id; r.channelId = "web"; r.messageId = "m"; r.text = "t"
                _ = try await c.sessions.postCustomerMessage(r)
            }),
            ("PostCustomerMessage.channel_id", {
                var r = SessionsV1.PostCustomerMessageRequest(); r.conversationId = "c"; r.channelId = id; r.messageId = "m"; r.text = "t"
                _ = try await c.sessions.postCustomerMessage(r)
            }),
            ("PostCustomerMessage.message_id", {
                var r = SessionsV1.PostCustomerMessageRequest(); r.conversationId = "c"; r.channelId = "web"; r.messageId = id; r.text = "t"
                _ = try await c.sessions.postCustomerMessage(r)
            }),
            ("CreateSession.conversation_id", {
                var r = SessionsV1.CreateSessionRequest(); r.conversationId = id; r.channelId = "web"
                _ = try await c.sessions.createSession(r)
            }),
            ("CreateSession.channel_id", {
                var r = SessionsV1.CreateSessionRequest(); r.conversationId = "c"; r.channelId = id
                _ = try await c.sessions.createSession(r)
            }),
            ("StartBusinessInitiated.rep_id", {
                var r = SessionsV1.StartBusinessInitiatedRequest(); r.repId = id; r.conversationId = "c"; r.channelId = "web"
                _ = try await c.sessions.startBusinessInitiated(r)
            }),
            ("ListSessions.rep_id", { var r = SessionsV1.ListSessionsRequest(); r.repId = id; _ = try await c.sessions.listSessions(r) }),
            ("ListSessions.channel_id", { var r = SessionsV1.ListSessionsRequest(); r.channelId = id; _ = try await c.sessions.listSessions(r) }),
            ("ListSessions.conversation_id", {
                var r = SessionsV1.ListSessionsRequest(); r.conversationId = id; _ = try await c.sessions.listSessions(r)
            }),
            ("ListSessions.page_token", { var r = SessionsV1.ListSessionsRequest(); r.pageToken = id; _ = try await c.sessions.listSessions(r) }),
            ("GetRep", { var r = SessionsV1.GetRepRequest(); r.repId = id; _ = try await c.reps.getRep(r) }),
            ("GetWorkload", { var r = SessionsV1.GetRepRequest(); r.repId = id; _ = try await c.reps.getWorkload(r) }),
            ("SetPresence", { var r = SessionsV1.SetPresenceRequest(); r.repId = id; r.presence = .available; _ = try await c.reps.setPresence(r) }),
            ("CreateRep", {
                var rep = SessionsV1.Rep(); rep.id = id; rep.displayName = "n"; rep.capacity = 1
                var r = SessionsV1.RepRequest(); r.rep = rep; _ = try await c.reps.createRep(r)
            }),
            ("UpdateRep", {
                var rep = SessionsV1.Rep(); rep.id = id; rep.displayName = "n"; rep.capacity = 1
                var r = SessionsV1.RepRequest(); r.rep = rep; _ = try await c.reps.updateRep(r)
            }),
            ("GetChannel", { var r = SessionsV1.GetChannelRequest(); r.channelId = id; _ = try await c.channels.getChannel(r) }),
            ("CreateChannel", {
                var ch = SessionsV1.Channel(); ch.id = id; ch.type = .enhancedWebChatV2
                var r = SessionsV1.ChannelRequest(); r.channel = ch; _ = try await c.channels.createChannel(r)
            }),
            ("UpdateChannel", {
                var ch = SessionsV1.Channel(); ch.id = id; ch.type = .enhancedWebChatV2
                var r = SessionsV1.ChannelRequest(); r.channel = ch; _ = try await c.channels.updateChannel(r)
            }),
            ("GrantPermission", {
                var r = SessionsV1.PermissionChangeRequest(); r.repId = id; r.permission = .messagingAgent
                _ = try await c.permissions.grantPermission(r)
            }),
            ("RevokePermission", {
                var r = SessionsV1.PermissionChangeRequest(); r.repId = id; r.permission = .messagingAgent
                _ = try await c.permissions.revokePermission(r)
            }),
            ("ListPermissions", { var r = SessionsV1.ListPermissionsRequest(); r.repId = id; _ = try await c.permissions.listPermissions(r) }),
            ("CheckPermission.rep_id", {
                var r = SessionsV1.CheckPermissionRequest(); r.repId = id; r.channelId = "web"; _ = try await c.permissions.checkPermission(r)
            }),
            ("CheckPermission.channel_id", {
                var r = SessionsV1.CheckPermissionRequest(); r.repId = "alice"; r.channelId = id; _ = try await c.permissions.checkPermission(r)
            }),
            ("ListEvents", { var r = SessionsV1.ListEventsRequest(); r.sessionId = id; _ = try await c.events.listEvents(r) }),
            ("WatchEvents", {
                var r = SessionsV1.WatchEventsRequest(); r.sessionId = id
                for try await _ in c.events.watchEvents(r) {}
            }),
            ("IssueToken.rep_id", {
                var r = SessionsV1.IssueTokenRequest(); r.name = "n"; r.role = .rep; r.repId = id; _ = try await c.tokens.issueToken(r)
            }),
            ("RevokeToken", { var r = SessionsV1.RevokeTokenRequest(); r.id = id; _ = try await c.tokens.revokeToken(r) }),
        ]
    }

    @Test("a 1 MB id in any field of any RPC: INVALID_ARGUMENT with a short message, and nothing changes")
    func hugeIdsAreRefused() async throws {
        try await withDaemon { d in
            try await d.createChannel("web", .enhancedWebChatV2)
            try await d.createRep("alice")
            let before = try await d.admin.sessions.listSessions(.init()).sessions.count
            for (name, call) in Self.calls(d.admin, Self.huge) {
                do {
                    try await call()
                    Issue.record("\(name) accepted a 1 MB id")
                } catch {
                    let e = error as? RPCError
                    #expect(e?.code == .invalidArgument, "\(name): \(error)")
                    #expect((e?.message.utf8.count ?? 0) < 300, "\(name) answered a message of \(e?.message.utf8.count ?? 0) bytes")
                }
            }
            #expect(try await d.admin.sessions.listSessions(.init()).sessions.count == before)
            #expect(try await d.admin.reps.listReps(.init()).reps.map(\.id) == ["alice"])
            #expect(try await d.admin.channels.listChannels(.init()).channels.map(\.id) == ["web"])
        }
    }

    @Test("an id just at the limit is looked up normally (NOT_FOUND), one byte over is INVALID_ARGUMENT")
    func idLengthBoundary() async throws {
        try await withDaemon { d in
            var r = SessionsV1.GetRepRequest()
            r.repId = String(repeating: "r", count: 128)
            let atLimit = await #expect(throws: RPCError.self) { _ = try await d.admin.reps.getRep(r) }
            #expect(atLimit?.code == .notFound)
            r.repId += "r"
            let over = await #expect(throws: RPCError.self) { _ = try await d.admin.reps.getRep(r) }
            #expect(over?.code == .invalidArgument)
        }
    }
}
