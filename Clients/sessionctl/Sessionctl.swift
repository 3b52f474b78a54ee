import ArgumentParser
import BuildInfo
import Foundation
import RPC
import SessionClient

/// The entry point: lets the global options stand anywhere (`GlobalArguments`), then runs `Sessionctl`.
@main
enum SessionctlMain {
    static func main() async {
        await Sessionctl.main(GlobalArguments.rearrange(Array(CommandLine.arguments.dropFirst()), root: Sessionctl.self))
    }
}

/// `sessionctl`: the command-line client of `sessiond`.
struct Sessionctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessionctl",
        abstract: "Command-line client for sessiond.",
        discussion: """
            The exit status is 0 when the call succeeded, otherwise 10 + the gRPC status code \
            (e.g. 15 for NOT_FOUND = 5, 26 for UNAUTHENTICATED = 16); 64 for usage errors; \
            1 when 'permissions check' finds permissions missing.
            The global options --server HOST:PORT, --token TOKEN, --timeout SECONDS and --json may stand before or \
            after the subcommand (sessionctl --json sessions list, sessionctl sessions list --server HOST:PORT), \
            also as --option=value; otherwise they come from SESSIONCTL_SERVER, SESSIONCTL_TOKEN, SESSIONCTL_TIMEOUT \
            and SESSIONCTL_JSON (true, 1 or yes; false, 0 or no; case-insensitive). A flag wins over the environment.
            Enum values are case-insensitive, with dashes or underscores (tab-based, TAB_BASED); durations are \
            written like 90s, 10m, 1h30m, 24h or 7d.
            """,
        version: "sessionctl \(BuildInfo.versionString)",
        subcommands: [
            Sessions.self, Reps.self, Channels.self, Permissions.self, Events.self, Tokens.self, ClockCommands.self,
            Health.self, Echo.self, Ping.self,
        ])
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Server address HOST:PORT. [env: SESSIONCTL_SERVER] (default: 127.0.0.1:7411)")
    var server: String?

    @Option(help: "Bearer token. [env: SESSIONCTL_TOKEN]")
    var token: String?

    @Option(help: "Per-call timeout in seconds. [env: SESSIONCTL_TIMEOUT] (default: 10)")
    var timeout: Double?

    @Flag(help: "Print JSON instead of text. [env: SESSIONCTL_JSON=true|1|yes, false|0|no]")
    var json = false

    var env: [String: String] { ProcessInfo.processInfo.environment }

    var address: String { server ?? env["SESSIONCTL_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:7411" }
    var bearer: String? { token ?? env["SESSIONCTL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `--json`, else SESSIONCTL_JSON (checked by `validate()`, so a bad value never gets here).
    var wantsJSON: Bool { json || ((try? Self.parseBool(env["SESSIONCTL_JSON"], "SESSIONCTL_JSON")) ?? false) }

    func validate() throws {
        _ = try Self.parseBool(env["SESSIONCTL_JSON"], "SESSIONCTL_JSON")
        _ = try timeoutSeconds()
    }

    /// An environment switch: true, 1 or yes; false, 0 or no (case-insensitive); unset or empty is false.
    static func parseBool(_ raw: String?, _ name: String) throws -> Bool {
        guard let raw, !raw.isEmpty else { return false }
        switch raw.trimmingWhitespace().lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ValidationError("\(name)='\(raw)' is not a boolean; use true, 1 or yes, or false, 0 or no")
        }
    }

    func timeoutSeconds() throws -> Double {
        if let timeout { guard timeout > 0 else { throw ValidationError("--timeout must be greater than 0") }; return timeout }
        if let raw = env["SESSIONCTL_TIMEOUT"], !raw.isEmpty {
            guard let t = Double(raw), t > 0 else { throw ValidationError("SESSIONCTL_TIMEOUT='\(raw)' is not a positive number of seconds") }
            return t
        }
        return 10
    }

    func client() throws -> SessionClient {
        do {
            return try SessionClient(address: address, token: bearer)
        } catch {
            throw ValidationError("--server: \(error.message)")
        }
    }

    func callOptions() throws -> RPCCallOptions {
        RPCCallOptions(timeout: .milliseconds(Int64(try timeoutSeconds() * 1000)))
    }
}

/// Runs one RPC-using command body and turns an `RPCError` into one clear
/// line on stderr and the matching exit status.
func runCall(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as RPCError {
        FileHandle.standardError.write(Data("sessionctl: \(error.code.name): \(error.message)\n".utf8))
        throw ExitCode(Int32(10 + Int(error.code.rawValue)))
    }
}

/// Prints a line to stdout.
func say(_ text: String) {
    print(text)
}
