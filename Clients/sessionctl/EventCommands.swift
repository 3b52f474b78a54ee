import ArgumentParser
import Foundation
import RPC
import SessionAPI
import SessionClient

/// `sessionctl events …`: sessions.v1.EventService.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the session transition history, or watch it live.",
        discussion: "Every transition is an event: cursor (global order), session, sequence (per session), time, actor, from → to status, rep and reason.",
        subcommands: [List.self, Watch.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a session's events in order.")

        @Argument(help: "Session id.")
        var session: String

        @Option(help: "Only events with a sequence number above this one.")
        var afterSequence: Int64 = 0

        @Option(help: "At most this many events (server default and cap: \(Limits.maxPageSize); 0: the default).")
        var limit: Int?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard afterSequence >= 0 else { throw ValidationError("--after-sequence must be 0 or more") }
            if let limit { _ = try pageSizeOption(limit, "--limit") }
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.ListEventsRequest()
                request.sessionId = session
                request.afterSequence = afterSequence
                request.limit = try limit.map { try pageSizeOption($0, "--limit") } ?? 0
                let response = try await global.client().events.listEvents(request, options: try global.callOptions())
                if global.wantsJSON {
                    printJSON(response)
                    return
                }
                var table = Table(["SEQ", "TIME", "FROM", "TO", "REP", "REASON", "ACTOR", "CURSOR"], rightAligned: [0, 7])
                for e in response.events {
                    table.add([
                        String(e.sequence), isoTime(e.timeMs), statusName(e.fromStatus), statusName(e.toStatus),
                        e.repId, reasonName(e.reason), actorText(e.actor), String(e.cursor),
                    ])
                }
                printTable(table, empty: "No events.")
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream events live, one line each, until interrupted.",
            discussion: """
                Each line: cursor, time, session, sequence, FROM→TO, rep, reason, actor ('-' when empty); with --json, \
                one compact JSON object per line. By default (--from now) only events that happen after the watch \
                starts are shown; --from beginning (or 0) replays the whole log first, --from CURSOR resumes after \
                that cursor. When the connection drops, watch reconnects with back-off and resumes after the last \
                cursor it printed, so no event is missed or repeated; pass that cursor to --from to resume a later \
                watch the same way. Status notes go to stderr. No --timeout applies.
                """)

        @Option(help: "Only events of this session.")
        var session: String?

        @Option(help: ArgumentHelp(
            "Where to start: now (only new events), beginning (the whole log; same as 0), or a cursor (the events after it).",
            valueName: "now|beginning|cursor"),
            transform: WatchStart.parse)
        var from: WatchStart = .now

        @Option(help: ArgumentHelp("The same as --from CURSOR (older spelling).", visibility: .hidden))
        var afterCursor: Int64?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if let afterCursor {
                guard afterCursor >= 0 else { throw ValidationError("--after-cursor must be 0 or more") }
            }
        }

        func run() async throws {
            try await runCall {
                var last: Int64
                switch afterCursor.map(WatchStart.cursor) ?? from {
                case .cursor(let cursor): last = cursor
                case .now:
                    last = try await Self.currentHead(global: global, session: session)
                    note("watch: from now, after cursor \(last)")
                }
                var failures = 0
                while true {
                    // A fresh channel per attempt: this loop owns the back-off.
                    let client = try global.client()
                    var request = SessionsV1.WatchEventsRequest()
                    request.afterCursor = last
                    request.sessionId = session ?? ""
                    let started = ContinuousClock.now
                    var received = false
                    let problem: String
                    do {
                        for try await event in client.events.watchEvents(request, options: RPCCallOptions()) {
                            if !received, failures > 0 { note("watch: reconnected; resuming after cursor \(last)") }
                            received = true
                            failures = 0
                            // Never print an event twice, even if the server replays one.
                            guard event.cursor > last else { continue }
                            emit(event)
                            last = event.cursor
                        }
                        problem = "the server ended the stream"
                    } catch let error as RPCError where Self.isTransient(error.code) {
                        problem = error.description
                    }
                    client.close()
                    if ContinuousClock.now - started > .seconds(30) { failures = 0 }
                    failures += 1
                    let delay = Self.backoff(failures)
                    note("watch: \(problem); reconnecting in \(Self.seconds(delay)), resuming after cursor \(last)")
                    try? await Task.sleep(for: delay)
                }
            }
        }

        // MARK: --from now

        /// The cursor of the newest event right now (0 when there is none), so that a watch after
        /// it shows only what happens from now on: GetEventHead for the whole feed; for one
        /// session, the last cursor of its events (ListEvents).
        static func currentHead(global: GlobalOptions, session: String?) async throws -> Int64 {
            let client = try global.client()
            defer { client.close() }
            guard let session else {
                return try await client.events.getEventHead(SessionsV1.GetEventHeadRequest(), options: try global.callOptions()).cursor
            }
            var head: Int64 = 0
            var request = SessionsV1.ListEventsRequest()
            request.sessionId = session
            request.limit = Int32(Limits.maxPageSize)
            while true {
                let page = try await client.events.listEvents(request, options: try global.callOptions()).events
                for e in page { head = max(head, e.cursor) }
                guard page.count == Limits.maxPageSize, let lastSequence = page.last?.sequence else { return head }
                request.afterSequence = lastSequence
            }
        }

        private func emit(_ e: SessionsV1.Event) {
            if global.wantsJSON {
                print(e.jsonObject().rendered())
            } else {
                let dash = { (s: String) in s.isEmpty ? "-" : s }
                let from = e.fromStatus == .unspecified ? "-" : e.fromStatus.protoName
                print("\(e.cursor) \(isoTime(e.timeMs)) \(dash(e.sessionId)) \(e.sequence) \(from)→\(statusName(e.toStatus)) \(dash(e.repId)) \(reasonName(e.reason)) \(actorText(e.actor))")
            }
            fflush(nil)
        }

        /// Errors a reconnect can cure; anything else (auth, bad arguments,
        /// unknown session, unimplemented) ends the command.
        static func isTransient(_ code: RPCStatusCode) -> Bool {
            switch code {
            case .unavailable, .cancelled, .deadlineExceeded, .aborted, .resourceExhausted, .internal, .unknown: true
            default: false
            }
        }

        /// 250 ms doubling up to 10 s, with ±20 % jitter.
        static func backoff(_ failures: Int) -> Duration {
            let base = min(0.25 * Double(1 << min(failures - 1, 10)), 10)
            return .milliseconds(Int64(base * Double.random(in: 0.8...1.2) * 1000))
        }

        static func seconds(_ d: Duration) -> String {
            let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
            return String(format: "%.1fs", Double(ms) / 1000)
        }
    }
}

/// `events watch --from`: `now`, `beginning` (0) or a cursor.
enum WatchStart: Equatable {
    case now
    case cursor(Int64)

    static func parse(_ raw: String) throws -> WatchStart {
        switch raw.trimmingWhitespace().lowercased() {
        case "now": return .now
        case "beginning", "start": return .cursor(0)
        default:
            guard let cursor = Int64(raw.trimmingWhitespace()), cursor >= 0 else {
                throw ValidationError("'\(raw)' is not now, beginning or a cursor (a number, 0 or more)")
            }
            return .cursor(cursor)
        }
    }
}
