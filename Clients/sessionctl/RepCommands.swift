import ArgumentParser
import RPC
import SessionAPI
import SessionClient

/// `sessionctl reps …`: sessions.v1.RepService.
struct Reps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage service reps: capacity, presence and workload.",
        subcommands: [Create.self, Update.self, Get.self, List.self, SetPresence.self, Workload.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a rep (admin).")

        @Argument(help: "Rep id, e.g. alice.")
        var id: String

        @Option(help: "Display name.")
        var name: String

        @Option(help: "Capacity in units (\(Limits.repCapacity.lowerBound)...\(Limits.repCapacity.upperBound)).")
        var capacity: Int

        @Option(name: .customLong("permission"),
                help: "A permission to grant; repeat for several: \(enumChoices(SessionsV1.Permission.self)).",
                transform: { try parseEnum($0, "permission") })
        var permissions: [SessionsV1.Permission] = []

        @Option(help: "Initial presence: \(enumChoices(SessionsV1.Presence.self)) (server default: offline).",
                transform: { try parseEnum($0, "presence") })
        var presence: SessionsV1.Presence?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(id, "ID")
            _ = try int32Option(capacity, "--capacity", in: Limits.repCapacity)
        }

        func run() async throws {
            try await runCall {
                var rep = SessionsV1.Rep()
                rep.id = id
                rep.displayName = name
                rep.capacity = try int32Option(capacity, "--capacity", in: Limits.repCapacity)
                rep.permissions = permissions
                rep.presence = presence ?? .unspecified
                var request = SessionsV1.RepRequest()
                request.rep = rep
                let response = try await global.client().reps.createRep(request, options: try global.callOptions())
                printRepResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a rep's display name or capacity (admin).",
            discussion: "Fetches the rep, changes the given fields and sends it back; other fields keep their values.")

        @Argument(help: "Rep id.")
        var id: String

        @Option(help: "New display name.")
        var name: String?

        @Option(help: "New capacity in units (\(Limits.repCapacity.lowerBound)...\(Limits.repCapacity.upperBound)).")
        var capacity: Int?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard name != nil || capacity != nil else { throw ValidationError("nothing to change: give --name and/or --capacity") }
            if let capacity { _ = try int32Option(capacity, "--capacity", in: Limits.repCapacity) }
        }

        func run() async throws {
            try await runCall {
                let client = try global.client()
                var get = SessionsV1.GetRepRequest()
                get.repId = id
                guard var rep = try await client.reps.getRep(get, options: try global.callOptions()).rep else {
                    throw RPCError(.internal, "the server returned no rep for '\(id)'")
                }
                if let name { rep.displayName = name }
                if let capacity { rep.capacity = try int32Option(capacity, "--capacity", in: Limits.repCapacity) }
                var request = SessionsV1.RepRequest()
                request.rep = rep
                let response = try await client.reps.updateRep(request, options: try global.callOptions())
                printRepResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one rep.")

        @Argument(help: "Rep id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.GetRepRequest()
                request.repId = id
                let response = try await global.client().reps.getRep(request, options: try global.callOptions())
                printRepResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List reps.")

        @Option(help: "Only reps with this presence: \(enumChoices(SessionsV1.Presence.self)).",
                transform: { try parseEnum($0, "presence") })
        var presence: SessionsV1.Presence?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.ListRepsRequest()
                request.presence = presence ?? .unspecified
                let response = try await global.client().reps.listReps(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                var table = Table(["ID", "NAME", "PRESENCE", "USED", "CAPACITY", "PERMISSIONS", "IDLE SINCE"], rightAligned: [3, 4])
                for rep in response.reps {
                    table.add([
                        rep.id, rep.displayName, rep.presence.protoName, String(rep.usedCapacity), String(rep.capacity),
                        rep.permissions.map(\.protoName).joined(separator: ","), isoTime(rep.idleSinceMs),
                    ])
                }
                printTable(table, empty: "No reps.")
            }
        }
    }

    struct SetPresence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "presence",
            abstract: "Set a rep's presence: AVAILABLE (routable), BUSY (no new sessions) or OFFLINE.",
            discussion: "A rep going OFFLINE hands their ACTIVE sessions back to the queue. Reps set their own presence; admins anyone's.")

        @Argument(help: "Rep id.")
        var id: String

        @Argument(help: "New presence: \(enumChoices(SessionsV1.Presence.self)).", transform: { try parseEnum($0, "presence") })
        var presence: SessionsV1.Presence

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.SetPresenceRequest()
                request.repId = id
                request.presence = presence
                let response = try await global.client().reps.setPresence(request, options: try global.callOptions())
                printRepResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Workload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a rep's capacity use and the sessions they own.")

        @Argument(help: "Rep id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.GetRepRequest()
                request.repId = id
                let w = try await global.client().reps.getWorkload(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(w)
                    return
                }
                let rep = w.rep
                say(fieldBlock([
                    ("rep", rep.map { $0.displayName.isEmpty ? $0.id : "\($0.id) (\($0.displayName))" } ?? id),
                    ("presence", rep?.presence.protoName ?? "-"),
                    ("capacity", String(w.capacity)),
                    ("used", String(w.used)),
                    ("free", String(w.free) + (w.free < 0 ? " (over capacity)" : "")),
                ]))
                say("\nActive sessions (\(w.activeSessions.count)), using capacity:")
                printTable(sessionTable(w.activeSessions), empty: "  none")
                say("\nOther sessions (\(w.otherSessions.count)), NEW or INACTIVE, using none:")
                printTable(sessionTable(w.otherSessions), empty: "  none")
            }
        }
    }
}

// MARK: - Output

func printRepResponse(_ response: SessionsV1.RepResponse, json: Bool) {
    if json {
        printJSON(response)
        return
    }
    guard let rep = response.rep else {
        say("(the server returned no rep)")
        return
    }
    say(fieldBlock([
        ("id", rep.id),
        ("name", rep.displayName),
        ("presence", rep.presence.protoName),
        ("capacity", String(rep.capacity)),
        ("used", String(rep.usedCapacity)),
        ("permissions", permissionList(rep.permissions)),
        ("idle since", isoTime(rep.idleSinceMs)),
    ]))
}
