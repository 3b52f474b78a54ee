public import RPC
public import SessionAPI

/// One connection to `sessiond` with a typed client per service, all
/// sharing the channel's single multiplexed connection.
///
/// ```swift
/// let client = try SessionClient(address: "127.0.0.1:7411", token: "…")
/// let session = try await client.sessions.createSession(request)
/// ```
public struct SessionClient: Sendable {
    public let channel: RPCClientChannel

    public init(channel: RPCClientChannel) {
        self.channel = channel
    }

    /// Connects lazily to `address` (`HOST:PORT`); `token` is sent as
    /// `authorization: Bearer <token>` on every call.
    public init(address: String, token: String? = nil, configuration: RPCClientConfiguration = .init()) throws(RPCError) {
        var configuration = configuration
        if let token, !token.isEmpty {
            configuration.defaultMetadata.set("authorization", "Bearer \(token)")
        }
        self.channel = try RPCClientChannel(address: address, configuration: configuration)
    }

    public var health: GrpcHealthV1.Health.Client { .init(channel: channel) }
    public var test: GrpcTesting.TestService.Client { .init(channel: channel) }
    public var sessions: SessionsV1.SessionService.Client { .init(channel: channel) }
    public var reps: SessionsV1.RepService.Client { .init(channel: channel) }
    public var channels: SessionsV1.ChannelService.Client { .init(channel: channel) }
    public var permissions: SessionsV1.PermissionService.Client { .init(channel: channel) }
    public var events: SessionsV1.EventService.Client { .init(channel: channel) }
    public var tokens: SessionsV1.TokenService.Client { .init(channel: channel) }
    public var clock: SessionsV1.ClockService.Client { .init(channel: channel) }
    public var tenants: SessionsV1.TenantService.Client { .init(channel: channel) }

    /// Closes the connection.
    public func close() { channel.close() }
}
