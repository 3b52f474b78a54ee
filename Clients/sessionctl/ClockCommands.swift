import ArgumentParser
import SessionAPI
import SessionClient

/// `sessionctl clock …`: sessions.v1.ClockService.
struct ClockCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clock",
        abstract: "Read the server's clock, or advance its test clock.",
        subcommands: [Now.self, Advance.self])

    struct Now: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the server's current time and whether it is a test clock.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                let response = try await global.client().clock.getTime(.init(), options: try global.callOptions())
                printClock(response, json: global.wantsJSON)
            }
        }
    }

    struct Advance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the server's test clock forward (admin; server started with --test-clock).",
            discussion: "Timers that fall due (inactivity, auto-end) fire before the call returns.")

        @Argument(help: ArgumentHelp("How far to move the clock (1ms...30d), e.g. 24h, 90m, 30s, 1h30m, 7d.", valueName: "duration"),
                  transform: parseClockAdvance)
        var duration: Int64

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.AdvanceClockRequest()
                request.byMs = duration
                let response = try await global.client().clock.advanceClock(request, options: try global.callOptions())
                printClock(response, json: global.wantsJSON, advancedBy: duration)
            }
        }
    }
}

private func printClock(_ response: SessionsV1.ClockResponse, json: Bool, advancedBy: Int64? = nil) {
    if json {
        printJSON(response)
        return
    }
    var fields: [(String, String)] = []
    if let advancedBy { fields.append(("advanced by", formatDuration(advancedBy))) }
    fields.append(("now", isoTime(response.nowMs)))
    fields.append(("clock", response.testClock ? "test clock (advanceable)" : "real time"))
    say(fieldBlock(fields))
}
