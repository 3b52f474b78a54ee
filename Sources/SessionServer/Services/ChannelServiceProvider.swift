public import RPC
public import SessionAPI
import SessionCore

/// `sessions.v1.ChannelService`: channel configuration.
public struct ChannelServiceProvider: SessionsV1.ChannelService.ServiceProtocol {
    let backend: SessionBackend

    public init(backend: SessionBackend) { self.backend = backend }

    private func response(_ channel: SessionCore.Channel) -> SessionsV1.ChannelResponse {
        var r = SessionsV1.ChannelResponse()
        r.channel = SessionsV1.Channel(channel)
        return r
    }

    public func createChannel(request: SessionsV1.ChannelRequest, context: RPCServerContext) async throws -> SessionsV1.ChannelResponse {
        guard let channel = try request.channel?.domain() else { throw RPCError(.invalidArgument, "channel is required") }
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.createChannel(channel, by: actor, at: now, in: &repo))
        }
    }

    public func updateChannel(request: SessionsV1.ChannelRequest, context: RPCServerContext) async throws -> SessionsV1.ChannelResponse {
        guard let channel = try request.channel?.domain() else { throw RPCError(.invalidArgument, "channel is required") }
        return try await backend.write(context) { engine, actor, now, repo in
            response(try engine.updateChannel(channel, by: actor, at: now, in: &repo).channel)
        }
    }

    public func getChannel(request: SessionsV1.GetChannelRequest, context: RPCServerContext) async throws -> SessionsV1.ChannelResponse {
        try await backend.read(context) { engine, actor, repo in response(try engine.getChannel(request.channelId, by: actor, in: repo)) }
    }

    public func listChannels(request: SessionsV1.ListChannelsRequest, context: RPCServerContext) async throws -> SessionsV1.ListChannelsResponse {
        try await backend.read(context) { engine, actor, repo in
            var channels: [SessionCore.Channel] = []
            var token: String?
            repeat {
                let page = try engine.listChannels(pageSize: SessionEngine.maxPageSize, pageToken: token, by: actor, in: repo)
                channels += page.items
                token = page.nextPageToken
            } while token != nil
            var r = SessionsV1.ListChannelsResponse()
            r.channels = channels.map(SessionsV1.Channel.init)
            return r
        }
    }
}
