import ArgumentParser
import SessionAPI
import SessionClient

/// `sessionctl tokens …`: sessions.v1.TokenService.
struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue, list and revoke bearer tokens; show who the current token is.",
        discussion: """
            Roles: service (channel integrations), rep (acts as one rep, on its own sessions), \
            admin (configuration, reps, permissions, any session) — each inside one tenant, the \
            tenant of the token that issues it; operator (manages tenants, see 'sessionctl tenants').
            """,
        subcommands: [Issue.self, List.self, Revoke.self, WhoAmI.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a token (admin); its secret is printed once and never again.")

        @Option(help: "Name of the token holder (shown as the actor in events).")
        var name: String

        @Option(help: "Role: \(enumChoices(SessionsV1.Role.self)).", transform: { try parseEnum($0, "role") })
        var role: SessionsV1.Role

        @Option(help: "The rep a rep token acts as (required with --role rep).")
        var rep: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard Limits.tokenNameLength.contains(name.count) else {
                throw ValidationError("--name must be \(Limits.tokenNameLength.lowerBound) to \(Limits.tokenNameLength.upperBound) characters, not \(name.count)")
            }
            if role == .rep, rep?.trimmingWhitespace().isEmpty ?? true { throw ValidationError("--role rep needs --rep REP_ID") }
            if role != .rep, rep != nil { throw ValidationError("--rep is only for --role rep") }
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.IssueTokenRequest()
                request.name = name
                request.role = role
                request.repId = rep ?? ""
                let response = try await global.client().tokens.issueToken(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                say("Token issued. Store the secret now; it is shown only this once:")
                say("")
                say("    \(response.token)")
                say("")
                if let info = response.info { say(fieldBlock(tokenFields(info))) }
                say("")
                say("Use it with --token or SESSIONCTL_TOKEN.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens, without their secrets (admin).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                let response = try await global.client().tokens.listTokens(.init(), options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                var table = Table(["ID", "NAME", "ROLE", "REP", "TENANT", "CREATED", "STATE"])
                for t in response.tokens {
                    table.add([t.id, t.name, roleText(t.role), t.repId, t.tenantId.isEmpty ? "-" : t.tenantId, isoTime(t.createdAtMs), t.revoked ? "revoked" : "active"])
                }
                printTable(table, empty: "No tokens.")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (admin); its holder is refused from then on.")

        @Argument(help: "Token id (from 'tokens list', not the secret).")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.RevokeTokenRequest()
                request.id = id
                let info = try await global.client().tokens.revokeToken(request, options: try global.callOptions())
                if global.wantsJSON { printJSON(info) } else { say(fieldBlock(tokenFields(info))) }
            }
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whoami",
            abstract: "Show the token this client calls with (--token / SESSIONCTL_TOKEN).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                let info = try await global.client().tokens.whoAmI(.init(), options: try global.callOptions())
                if global.wantsJSON { printJSON(info) } else { say(fieldBlock(tokenFields(info))) }
            }
        }
    }
}

private func roleText(_ role: SessionsV1.Role) -> String {
    role == .unspecified ? "-" : role.protoName
}

func tokenFields(_ t: SessionsV1.TokenInfo) -> [(String, String)] {
    var fields: [(String, String)] = [("id", t.id), ("name", t.name), ("role", roleText(t.role)), ("tenant", t.tenantId.isEmpty ? "-" : t.tenantId)]
    if !t.repId.isEmpty || t.role == .rep { fields.append(("rep", t.repId)) }
    fields.append(("created", isoTime(t.createdAtMs)))
    fields.append(("state", t.revoked ? "revoked" : "active"))
    return fields
}
