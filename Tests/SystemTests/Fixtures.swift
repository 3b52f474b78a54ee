import Foundation
import RPC
import SessionAPI
import SessionClient

/// Creates a channel and reps with room for many sessions.
func setUpChannelAndReps(_ client: SessionClient, channel: String = "web", reps: Int = 4, capacity: Int32 = 100, autoEndMs: Int64 = 0) async throws {
    var c = SessionsV1.Channel()
    c.id = channel
    c.type = .enhancedWebChatV2
    c.capacityModel = .tabBased
    c.inactiveAutoEndAfterMs = autoEndMs
    var cr = SessionsV1.ChannelRequest()
    cr.channel = c
    _ = try await client.channels.createChannel(cr)
    for i in 0..<reps {
        var r = SessionsV1.Rep()
        r.id = "rep-\(i)"
        r.displayName = "Rep \(i)"
        r.capacity = capacity
        r.presence = .available
        r.permissions = [.enhancedChatUser, .enhancedChatRep]
        var rr = SessionsV1.RepRequest()
        rr.rep = r
        _ = try await client.reps.createRep(rr)
    }
}

func customerMessage(_ client: SessionClient, conversation: String, channel: String, message: String) async throws(RPCError) -> SessionsV1.SessionResponse {
    var m = SessionsV1.PostCustomerMessageRequest()
    m.conversationId = conversation
    m.channelId = channel
    m.messageId = message
    m.text = "hello from \(conversation)"
    return try await client.sessions.postCustomerMessage(m, options: .init(timeout: .seconds(5)))
}

func openSessions(_ client: SessionClient, conversation: String) async throws -> [SessionsV1.Session] {
    var l = SessionsV1.ListSessionsRequest()
    l.conversationId = conversation
    return try await client.sessions.listSessions(l).sessions
}

/// Polls `condition` every 20 ms until it holds or `seconds` passed: a wait for a state the
/// server reaches by itself (no fixed sleep decides the outcome).
func waitUntil(seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
