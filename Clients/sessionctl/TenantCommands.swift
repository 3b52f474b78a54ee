import ArgumentParser
import RPC
import SessionAPI
import SessionCore
import SessionClient

/// `sessionctl tenants …`: sessions.v1.TenantService (operator tokens only).
struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, disable and enable tenants (operator token).",
        discussion: """
            A tenant is a namespace of its own: channels, reps, sessions, events, message ids and \
            tokens. The tenant 'default' exists from the first start. Operator tokens come from \
            sessiond's --operator-token or DATA_DIR/operator-token.
            """,
        subcommands: [Create.self, List.self, Get.self, Disable.self, Enable.self, AdminToken.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a tenant; prints its first admin token (shown only this once).")

        @Argument(help: "Tenant id: 1 to 40 of a-z, 0-9 and '-', not starting with '-'.")
        var id: String

        @Option(help: "A display name (default: the id).")
        var name: String?

        @Option(help: "The name of the tenant's first admin token (default: tenant-admin).")
        var adminTokenName: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            do { try IdentifierRules.validateTenantID(id) } catch { throw ValidationError(error.message) }
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.CreateTenantRequest()
                request.id = id
                request.displayName = name ?? ""
                request.adminTokenName = adminTokenName ?? ""
                let response = try await global.client().tenants.createTenant(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                if let tenant = response.tenant { say(fieldBlock(tenantFields(tenant))) }
                say("")
                say("Its first admin token. Store the secret now; it is shown only this once:")
                say("")
                say("    \(response.adminToken?.token ?? "")")
                say("")
                say("Use it with --token or SESSIONCTL_TOKEN to set the tenant up (channels, reps, tokens).")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                let response = try await global.client().tenants.listTenants(.init(), options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                var table = Table(["ID", "NAME", "CREATED", "STATE"])
                for t in response.tenants {
                    table.add([t.id, t.displayName, isoTime(t.createdAtMs), t.disabled ? "disabled since \(isoTime(t.disabledAtMs))" : "enabled"])
                }
                printTable(table, empty: "No tenants.")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tenant.")

        @Argument(help: "Tenant id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await showTenant(id, global) { client, request, options in try await client.tenants.getTenant(request, options: options) }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable a tenant: its tokens are refused and its timers wait; its data stays.")

        @Argument(help: "Tenant id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await showTenant(id, global) { client, request, options in try await client.tenants.disableTenant(request, options: options) }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enable a disabled tenant again (its overdue timers fire at once).")

        @Argument(help: "Tenant id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await showTenant(id, global) { client, request, options in try await client.tenants.enableTenant(request, options: options) }
        }
    }

    struct AdminToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "admin-token",
            abstract: "Issue another admin token for a tenant (a lost one, say); shown only this once.")

        @Argument(help: "Tenant id.")
        var id: String

        @Option(help: "The token's name (default: tenant-admin).")
        var name: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.IssueTenantAdminTokenRequest()
                request.tenantId = id
                request.name = name ?? ""
                let response = try await global.client().tenants.issueTenantAdminToken(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                say("Token issued. Store the secret now; it is shown only this once:")
                say("")
                say("    \(response.token)")
                say("")
                if let info = response.info { say(fieldBlock(tokenFields(info))) }
            }
        }
    }
}

/// Calls a TenantService method that takes a tenant id and answers a tenant, and shows it.
private func showTenant(
    _ id: String, _ global: GlobalOptions,
    _ call: (SessionClient, SessionsV1.TenantRequest, RPCCallOptions) async throws -> SessionsV1.Tenant
) async throws {
    try await runCall {
        var request = SessionsV1.TenantRequest()
        request.id = id
        let tenant = try await call(try global.client(), request, try global.callOptions())
        if global.wantsJSON { printJSON(tenant) } else { say(fieldBlock(tenantFields(tenant))) }
    }
}

private func tenantFields(_ t: SessionsV1.Tenant) -> [(String, String)] {
    var fields: [(String, String)] = [("id", t.id), ("name", t.displayName), ("created", isoTime(t.createdAtMs))]
    fields.append(("state", t.disabled ? "disabled" : "enabled"))
    if t.disabled { fields.append(("disabled", isoTime(t.disabledAtMs))) }
    return fields
}
