import ArgumentParser
import RPC
import SessionAPI
import SessionClient

/// `sessionctl channels …`: sessions.v1.ChannelService.
struct Channels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Configure channels: type, capacity model and weight, inactivity and auto-end timers.",
        subcommands: [Create.self, Update.self, Get.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a channel (admin).",
            discussion: """
                Channel types: \(enumChoices(SessionsV1.ChannelType.self)).
                Enhanced Chat types (enhanced-in-app-chat, enhanced-web-chat-v1/v2) and bring-your-own-channel \
                may have a customer inactivity timeout (1m...24h). Standard channels never mark a customer inactive.
                Durations are written like 90s, 10m, 1h30m, 24h or 7d.
                """)

        @Argument(help: "Channel id, e.g. web-eu (1...128 of A-Z a-z 0-9 . _ -).")
        var id: String

        @Option(help: "Channel type, e.g. enhanced-web-chat-v2, enhanced-whatsapp, standard-sms.",
                transform: { try parseEnum($0, "channel type") })
        var type: SessionsV1.ChannelType

        @OptionGroup var settings: ChannelSettings

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(id, "ID")
        }

        func run() async throws {
            try await runCall {
                var channel = SessionsV1.Channel()
                channel.id = id
                channel.type = type
                try settings.apply(to: &channel)
                var request = SessionsV1.ChannelRequest()
                request.channel = channel
                let response = try await global.client().channels.createChannel(request, options: try global.callOptions())
                printChannelResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a channel's settings (admin); unspecified settings keep their current values.",
            discussion: "Fetches the channel, changes the given settings and sends it back.")

        @Argument(help: "Channel id.")
        var id: String

        @Option(help: "New channel type, e.g. enhanced-web-chat-v2.", transform: { try parseEnum($0, "channel type") })
        var type: SessionsV1.ChannelType?

        @OptionGroup var settings: ChannelSettings

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard type != nil || !settings.isEmpty else {
                throw ValidationError("nothing to change: give at least one of --type, --capacity-model, --weight, --customer-inactivity-timeout, --auto-end-after, --hide-inactivate-action, --show-inactivate-action")
            }
        }

        func run() async throws {
            try await runCall {
                let client = try global.client()
                var get = SessionsV1.GetChannelRequest()
                get.channelId = id
                guard var channel = try await client.channels.getChannel(get, options: try global.callOptions()).channel else {
                    throw RPCError(.internal, "the server returned no channel for '\(id)'")
                }
                if let type { channel.type = type }
                try settings.apply(to: &channel)
                var request = SessionsV1.ChannelRequest()
                request.channel = channel
                let response = try await client.channels.updateChannel(request, options: try global.callOptions())
                printChannelResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one channel.")

        @Argument(help: "Channel id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.GetChannelRequest()
                request.channelId = id
                let response = try await global.client().channels.getChannel(request, options: try global.callOptions())
                printChannelResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List channels.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                let response = try await global.client().channels.listChannels(.init(), options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                var table = Table(["ID", "TYPE", "CAPACITY MODEL", "WEIGHT", "INACTIVITY TIMEOUT", "AUTO-END AFTER", "INACTIVE ACTION"], rightAligned: [3])
                for c in response.channels {
                    table.add([
                        c.id, c.type.protoName, capacityModelText(c.capacityModel), String(effectiveWeight(c)),
                        inactivityTimeoutText(c), formatDuration(effectiveAutoEnd(c)), c.inactivateActionHidden ? "hidden" : "visible",
                    ])
                }
                printTable(table, empty: "No channels.")
            }
        }
    }
}

/// Whether reps see the "Customer Inactive" action.
enum InactivateAction: EnumerableFlag {
    case hideInactivateAction
    case showInactivateAction

    static func help(for value: Self) -> ArgumentHelp? {
        switch value {
        case .hideInactivateAction: "Hide the \"Customer Inactive\" action from reps."
        case .showInactivateAction: "Show the \"Customer Inactive\" action to reps (the default)."
        }
    }
}

/// The channel settings `create` and `update` share; unset ones are left alone.
struct ChannelSettings: ParsableArguments {
    @Option(help: "tab-based (default) or status-based: whether a returning customer goes back to the queue or to the same rep.",
            transform: { try parseEnum($0, "capacity model") })
    var capacityModel: SessionsV1.CapacityModel?

    @Option(help: "Units of rep capacity one ACTIVE session uses, \(Limits.channelWeight.lowerBound)...\(Limits.channelWeight.upperBound) (default 1).")
    var weight: Int?

    @Option(help: ArgumentHelp("Mark ACTIVE sessions INACTIVE after this long (1m...24h) without a customer reply, or 'off' (default). Enhanced Chat and bring-your-own-channel only.",
                               valueName: "duration"),
            transform: parseInactivityTimeout)
    var customerInactivityTimeout: Int64?

    @Option(help: ArgumentHelp("End INACTIVE sessions after this long (10m...7d), or 'default' (24h).", valueName: "duration"),
            transform: parseAutoEndAfter)
    var autoEndAfter: Int64?

    @Flag(exclusivity: .exclusive)
    var inactivateAction: InactivateAction?

    var isEmpty: Bool {
        capacityModel == nil && weight == nil && customerInactivityTimeout == nil && autoEndAfter == nil && inactivateAction == nil
    }

    func validate() throws {
        if let weight { _ = try int32Option(weight, "--weight", in: Limits.channelWeight) }
    }

    func apply(to channel: inout SessionsV1.Channel) throws {
        if let capacityModel { channel.capacityModel = capacityModel }
        if let weight { channel.capacityWeight = try int32Option(weight, "--weight", in: Limits.channelWeight) }
        if let customerInactivityTimeout { channel.customerInactivityTimeoutMs = customerInactivityTimeout }
        if let autoEndAfter { channel.inactiveAutoEndAfterMs = autoEndAfter }
        if let inactivateAction { channel.inactivateActionHidden = inactivateAction == .hideInactivateAction }
    }
}

// MARK: - Output

func printChannelResponse(_ response: SessionsV1.ChannelResponse, json: Bool) {
    if json {
        printJSON(response)
        return
    }
    guard let c = response.channel else {
        say("(the server returned no channel)")
        return
    }
    say(fieldBlock([
        ("id", c.id),
        ("type", c.type.protoName),
        ("capacity model", capacityModelText(c.capacityModel)),
        ("weight", String(effectiveWeight(c)) + (c.capacityWeight == 0 ? " (default)" : "")),
        ("customer inactivity timeout", inactivityTimeoutText(c)),
        ("inactive auto-end after", formatDuration(effectiveAutoEnd(c)) + (c.inactiveAutoEndAfterMs == 0 ? " (default)" : "")),
        ("customer inactive action", c.inactivateActionHidden ? "hidden" : "visible"),
    ]))
}

private func capacityModelText(_ model: SessionsV1.CapacityModel) -> String {
    model == .unspecified ? "TAB_BASED" : model.protoName
}

private func effectiveWeight(_ c: SessionsV1.Channel) -> Int32 { c.capacityWeight == 0 ? 1 : c.capacityWeight }

private func effectiveAutoEnd(_ c: SessionsV1.Channel) -> Int64 { c.inactiveAutoEndAfterMs == 0 ? 86_400_000 : c.inactiveAutoEndAfterMs }

private func inactivityTimeoutText(_ c: SessionsV1.Channel) -> String {
    c.customerInactivityTimeoutMs == 0 ? "off" : formatDuration(c.customerInactivityTimeoutMs)
}
