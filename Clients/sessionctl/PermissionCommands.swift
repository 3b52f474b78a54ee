import ArgumentParser
import SessionAPI
import SessionClient

/// `sessionctl permissions …`: sessions.v1.PermissionService.
struct Permissions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Grant, revoke and check the permissions reps need per channel family.",
        discussion: """
            Enhanced Chat channels need ENHANCED_CHAT_USER and ENHANCED_CHAT_REP; Enhanced Messaging channels \
            and Bring Your Own Channel need MESSAGING_AGENT.
            Permissions: \(enumChoices(SessionsV1.Permission.self)).
            """,
        subcommands: [Grant.self, Revoke.self, List.self, Check.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant a permission to a rep (admin).")

        @Argument(help: "Rep id.")
        var rep: String

        @Argument(help: "Permission: \(enumChoices(SessionsV1.Permission.self)).", transform: { try parseEnum($0, "permission") })
        var permission: SessionsV1.Permission

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.PermissionChangeRequest()
                request.repId = rep
                request.permission = permission
                let response = try await global.client().permissions.grantPermission(request, options: try global.callOptions())
                printPermissions(response, json: global.wantsJSON)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a permission from a rep (admin).")

        @Argument(help: "Rep id.")
        var rep: String

        @Argument(help: "Permission: \(enumChoices(SessionsV1.Permission.self)).", transform: { try parseEnum($0, "permission") })
        var permission: SessionsV1.Permission

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.PermissionChangeRequest()
                request.repId = rep
                request.permission = permission
                let response = try await global.client().permissions.revokePermission(request, options: try global.callOptions())
                printPermissions(response, json: global.wantsJSON)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a rep's permissions.")

        @Argument(help: "Rep id.")
        var rep: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.ListPermissionsRequest()
                request.repId = rep
                let response = try await global.client().permissions.listPermissions(request, options: try global.callOptions())
                printPermissions(response, json: global.wantsJSON)
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check whether a rep may work on a channel.",
            discussion: "Exit status 0 when allowed, 1 (with the missing permissions named) when not.")

        @Argument(help: "Rep id.")
        var rep: String

        @Argument(help: "Channel id.")
        var channel: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.CheckPermissionRequest()
                request.repId = rep
                request.channelId = channel
                let response = try await global.client().permissions.checkPermission(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                } else if response.allowed {
                    say("allowed: rep \(rep) may work on channel \(channel)")
                } else {
                    let missing = response.missing.isEmpty ? "(the server named none)" : response.missing.map(\.protoName).joined(separator: ", ")
                    say("not allowed: rep \(rep) lacks \(missing) for channel \(channel)")
                }
                if !response.allowed { throw ExitCode(1) }
            }
        }
    }
}

private func printPermissions(_ response: SessionsV1.PermissionsResponse, json: Bool) {
    if json {
        printJSON(response)
    } else {
        say(fieldBlock([("rep", response.repId), ("permissions", permissionList(response.permissions))]))
    }
}
