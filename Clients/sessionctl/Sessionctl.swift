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
            Sessions.self, Reps.self, Channels.self, Permissions.self, Events.self, Tokens.self, Tenants.self, ClockCommands.self,
            Health.self, Echo.self, Ping.self, Call.self, Describe.self,
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

    @Flag(help: "Connect with TLS, trusting the system's CAs (implied by --tls-ca). [env: SESSIONCTL_TLS=true|1|yes]")
    var tls = false

    @Option(help: "Connect with TLS; the server's certificate must chain to a CA in this PEM file. [env: SESSIONCTL_TLS_CA]")
    var tlsCa: String?

    @Option(help: "Client certificate (PEM chain) for servers that require one; needs --tls-key. [env: SESSIONCTL_TLS_CERT]")
    var tlsCert: String?

    @Option(help: "Private key of --tls-cert. [env: SESSIONCTL_TLS_KEY]")
    var tlsKey: String?

    @Option(help: "The name the server's certificate must carry, when it is not the host of --server. [env: SESSIONCTL_TLS_SERVER_NAME]")
    var tlsServerName: String?

    var env: [String: String] { ProcessInfo.processInfo.environment }

    var address: String { server ?? env["SESSIONCTL_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:7411" }
    var bearer: String? { token ?? env["SESSIONCTL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `--json`, else SESSIONCTL_JSON (checked by `validate()`, so a bad value never gets here).
    var wantsJSON: Bool { json || ((try? Self.parseBool(env["SESSIONCTL_JSON"], "SESSIONCTL_JSON")) ?? false) }

    func validate() throws {
        _ = try Self.parseBool(env["SESSIONCTL_JSON"], "SESSIONCTL_JSON")
        _ = try timeoutSeconds()
        _ = try tlsSettings()
    }

    private func setting(_ flag: String?, _ name: String) -> String? {
        flag ?? env[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The TLS settings of the flags and environment, nil for plaintext.
    func tlsSettings() throws -> RPCClientTLS? {
        let ca = setting(tlsCa, "SESSIONCTL_TLS_CA")
        let cert = setting(tlsCert, "SESSIONCTL_TLS_CERT")
        let key = setting(tlsKey, "SESSIONCTL_TLS_KEY")
        let name = setting(tlsServerName, "SESSIONCTL_TLS_SERVER_NAME")
        let fromEnv = try Self.parseBool(env["SESSIONCTL_TLS"], "SESSIONCTL_TLS")
        let on = tls || fromEnv || ca != nil || cert != nil || key != nil || name != nil
        guard on else { return nil }
        if (cert == nil) != (key == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        return RPCClientTLS(caPath: ca, certificateChainPath: cert, privateKeyPath: key, serverName: name)
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

    /// Whether a timeout was asked for (flag or environment) rather than defaulted.
    var timeoutGiven: Bool { timeout != nil || !(env["SESSIONCTL_TIMEOUT"] ?? "").isEmpty }

    /// A client of `--server`; `sendToken: false` leaves out `--token` (the caller sends its own authorization).
    func client(sendToken: Bool = true) throws -> SessionClient {
        var configuration = RPCClientConfiguration()
        configuration.tls = try tlsSettings()
        do {
            return try SessionClient(address: address, token: sendToken ? bearer : nil, configuration: configuration)
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
