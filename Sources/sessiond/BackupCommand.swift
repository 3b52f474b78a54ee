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

/// `sessiond backup DIR`: a consistent copy of the embedded store, taken while sessiond runs.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessiond backup",
        abstract: "Copy the embedded store (SQLite, every tenant) into a new directory, while sessiond runs or not.",
        discussion: """
            DIR is laid out like a data directory: sessions.sqlite (the default tenant, the tenant \
            registry and every token) and tenants/<id>/sessions.sqlite, each one self-contained \
            file holding every change of its tenant that was durable when the backup read its \
            journal (SQLite's online backup of the tables, then the journal records the tables did \
            not hold yet). DIR must not exist; it is created 0700, its files 0600. To restore: stop \
            sessiond and start it with --data-dir DIR (or move DIR's contents into an empty data \
            directory). Exit status: 0 done, 64 usage, 66 no database in the data directory, 73 \
            DIR exists or cannot be written, 74 the copy failed.
            """)

    @Argument(help: "The directory to write the copy into (must not exist).")
    var file: String

    @Option(help: "The data directory of the sessiond to copy. [env: SESSIOND_DATA_DIR] (default: ./sessiond-data)")
    var dataDir: String?

    func run() throws {
        let directory = dataDir ?? ProcessInfo.processInfo.environment["SESSIOND_DATA_DIR"] ?? "./sessiond-data"
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("sessions.sqlite")) else {
            Self.fail("no database in \(directory) (sessions.sqlite): nothing to back up", status: 66)
        }
        guard !FileManager.default.fileExists(atPath: file) else {
            Self.fail("\(file) exists: a backup never overwrites anything", status: 73)
        }
        do {
            let result = try DataDirectoryBackup.run(dataDirectory: directory, toDirectory: file)
            let tenants = result.tenants.isEmpty ? "" : ", tenants default and \(result.tenants.joined(separator: ", "))"
            print("backed up \(directory) to \(file): \(result.bytes) bytes, main database through journal batch \(result.sequence) (\(result.journalRecords) records from the journals)\(tenants)")
        } catch {
            Self.fail("backup failed: \(error)", status: 74)
        }
    }

    private static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(status)
    }
}
