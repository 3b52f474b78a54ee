import ArgumentParser
import Foundation
import SessionStorage

/// The entry point: `sessiond backup …` or the server.
@main
enum SessiondMain {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "backup" {
            BackupCommand.main(Array(arguments.dropFirst()))
        } else {
            SessiondCommand.main()
        }
    }
}

/// `sessiond backup FILE`: a consistent copy of the embedded store, taken while sessiond runs.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessiond backup",
        abstract: "Copy the embedded store (SQLite) into one self-contained file, while sessiond runs or not.",
        discussion: """
            The copy holds every change that was durable when the backup read the journal: SQLite's \
            online backup of the tables, then the journal records the tables did not hold yet. FILE \
            must not exist; it is created 0600. To restore: stop sessiond, put FILE as \
            DATA_DIR/sessions.sqlite into an empty data directory (with admin-token if you keep it), \
            start. Exit status: 0 done, 64 usage, 66 no database in the data directory, 73 cannot \
            write FILE, 74 the copy failed.
            """)

    @Argument(help: "Where to write the copy (must not exist).")
    var file: String

    @Option(help: "The data directory of the sessiond to copy. [env: SESSIOND_DATA_DIR] (default: ./sessiond-data)")
    var dataDir: String?

    func run() throws {
        let directory = dataDir ?? ProcessInfo.processInfo.environment["SESSIOND_DATA_DIR"] ?? "./sessiond-data"
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("sessions.sqlite")) else {
            Self.fail("no database in \(directory) (sessions.sqlite): nothing to back up", status: 66)
        }
        guard !FileManager.default.fileExists(atPath: file) else {
            Self.fail("\(file) exists: a backup never overwrites a file", status: 73)
        }
        do {
            let result = try DataDirectoryBackup.run(dataDirectory: directory, to: file)
            print("backed up \(directory) to \(file): \(result.bytes) bytes, through journal batch \(result.sequence) (\(result.journalRecords) from the journal)")
        } catch {
            Self.fail("backup failed: \(error)", status: 74)
        }
    }

    private static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(status)
    }
}
