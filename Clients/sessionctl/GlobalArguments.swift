import ArgumentParser

/// Lets the shared options (`GlobalOptions`: `--server`, `--token`,
/// `--timeout`, `--json`, the `--tls…` options) go anywhere on the command line, as with kubectl
/// and grpcurl: before the subcommand, between group and leaf
/// (`sessions --server X list`) or after it.
///
/// swift-argument-parser only accepts an option on the command that declares
/// it, and only leaf commands declare `GlobalOptions`. So before parsing,
/// every recognised global option (with its value, as `--opt value` or
/// `--opt=value`) that stands before or between the subcommand names is moved
/// to right after the leaf subcommand's name, in the order given; a later
/// occurrence of a single-value option wins, as it does after the leaf.
/// Arguments after a `--` are never touched, and nothing after the leaf is
/// moved (there the parser already handles them, and values such as
/// `--text "--json"` stay where they are).
///
/// When the words do not reach a leaf (`sessionctl --json`, `sessionctl
/// sessions --server X`), the global options are dropped: they have no
/// meaning there, and the parser then shows the help or usage error for what
/// was given.
enum GlobalArguments {
    /// Long names of the global options that take a value.
    static let valueOptions: Set<String> = ["--server", "--token", "--timeout", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"]
    /// Long names of the global flags.
    static let flags: Set<String> = ["--json", "--tls"]

    /// `arguments` without the program name, rearranged for `root`.
    static func rearrange(_ arguments: [String], root: any ParsableCommand.Type) -> [String] {
        var output: [String] = []
        var moved: [String] = []
        var command: any ParsableCommand.Type = root
        var leafIndex: Int?   // where in `output` the leaf's name is
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" || leafIndex != nil {
                output.append(contentsOf: arguments[index...])
                break
            }
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flags.contains(argument) {
                moved.append(argument)
                index += 1
                continue
            }
            if valueOptions.contains(name) {
                if argument.contains("=") {
                    moved.append(argument)
                    index += 1
                    continue
                }
                if index + 1 < arguments.count {
                    moved.append(contentsOf: [argument, arguments[index + 1]])
                    index += 2
                    continue
                }
                // A value option with no value: left for the parser to report.
            }
            if !argument.hasPrefix("-"), let sub = subcommand(named: argument, of: command) {
                output.append(argument)
                command = sub
                if sub.configuration.subcommands.isEmpty && sub.configuration.groupedSubcommands.isEmpty {
                    leafIndex = output.count - 1
                }
            } else {
                output.append(argument)
            }
            index += 1
        }
        guard let leafIndex else { return output }
        output.insert(contentsOf: moved, at: leafIndex + 1)
        return output
    }

    private static func subcommand(named name: String, of command: any ParsableCommand.Type) -> (any ParsableCommand.Type)? {
        let configuration = command.configuration
        let all = configuration.subcommands + configuration.groupedSubcommands.flatMap(\.subcommands)
        return all.first { $0._commandName == name || $0.configuration.aliases.contains(name) }
    }
}
