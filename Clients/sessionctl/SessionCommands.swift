import ArgumentParser
import SessionAPI
import SessionClient

/// `sessionctl sessions …`: sessions.v1.SessionService.
struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, route, message, inactivate and end messaging sessions.",
        discussion: """
            A session is NEW (business-initiated, waiting for the customer), WAITING (queued for a rep), \
            ACTIVE (owned by a rep), INACTIVE (the customer went quiet; uses no capacity) or ENDED.
            """,
        subcommands: [
            Create.self, Get.self, List.self, CustomerMessage.self, RepMessage.self,
            MarkInactive.self, End.self, Start.self,
        ])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a session for a customer conversation (idempotent per conversation).",
            discussion: "Prints the existing open session, marked as replayed, when the conversation already has one.")

        @Option(help: "Conversation id (the customer's thread on the channel).")
        var conversation: String

        @Option(help: "Channel id the customer writes on, e.g. web-eu.")
        var channel: String

        @Option(help: "Id of an optional first customer message (idempotency key).")
        var messageId: String?

        @Option(help: "Text of the first customer message (needs --message-id).")
        var text: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(conversation, "--conversation")
            try requireID(channel, "--channel")
            if text != nil, messageId == nil { throw ValidationError("--text needs --message-id") }
            if messageId != nil, text == nil { throw ValidationError("--message-id needs --text (the server refuses a message without text)") }
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.CreateSessionRequest()
                request.conversationId = conversation
                request.channelId = channel
                request.messageId = messageId ?? ""
                request.text = text ?? ""
                let response = try await global.client().sessions.createSession(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one session.")

        @Argument(help: "Session id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.GetSessionRequest()
                request.sessionId = id
                let response = try await global.client().sessions.getSession(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List sessions, optionally filtered; one page unless --all.",
            discussion: "Filters combine; an unset filter matches everything.")

        @Option(help: "Only sessions in this status: \(enumChoices(SessionsV1.SessionStatus.self)).",
                transform: { try parseEnum($0, "session status") })
        var status: SessionsV1.SessionStatus?

        @Option(help: "Only sessions owned by this rep.")
        var rep: String?

        @Option(help: "Only sessions on this channel.")
        var channel: String?

        @Option(help: "Only sessions of this conversation.")
        var conversation: String?

        @Option(help: "Sessions per page (server default: 100; the server caps it at \(Limits.maxPageSize); 0: the default).")
        var pageSize: Int?

        @Option(help: "Continue from a previous page's next page token.")
        var pageToken: String?

        @Flag(help: "Follow next page tokens and print every page.")
        var all = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if let pageSize { _ = try pageSizeOption(pageSize, "--page-size") }
        }

        func run() async throws {
            try await runCall {
                let client = try global.client()
                var request = SessionsV1.ListSessionsRequest()
                request.status = status ?? .unspecified
                request.repId = rep ?? ""
                request.channelId = channel ?? ""
                request.conversationId = conversation ?? ""
                request.pageSize = try pageSize.map { try pageSizeOption($0, "--page-size") } ?? 0
                request.pageToken = pageToken ?? ""

                var result = try await client.sessions.listSessions(request, options: try global.callOptions())
                if all {
                    var seen: Set<String> = [request.pageToken]
                    while !result.nextPageToken.isEmpty {
                        guard seen.insert(result.nextPageToken).inserted else {
                            note("the server returned the page token '\(result.nextPageToken)' twice; stopping")
                            break
                        }
                        request.pageToken = result.nextPageToken
                        let page = try await client.sessions.listSessions(request, options: try global.callOptions())
                        result.sessions += page.sessions
                        result.nextPageToken = page.nextPageToken
                    }
                    result.nextPageToken = ""
                }
                if global.wantsJSON {
                    printJSON(result)
                    return
                }
                printTable(sessionTable(result.sessions), empty: "No sessions.")
                if !result.nextPageToken.isEmpty {
                    say("\nMore sessions: --page-token \(result.nextPageToken) (or --all)")
                }
            }
        }
    }

    struct CustomerMessage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "customer-message",
            abstract: "Post a customer message: finds the conversation's open session or opens a new one.",
            discussion: """
                A message on an INACTIVE session brings the customer back (tab-based: re-queued; status-based: \
                the same rep continues). Re-posting the same --message-id changes nothing.
                """)

        @Option(help: "Conversation id the customer writes on.")
        var conversation: String

        @Option(help: "Channel id; needed when the message opens a new session.")
        var channel: String?

        @Option(help: "Message id (idempotency key, unique per message).")
        var messageId: String

        @Option(help: "Message text (required by the server, at most 32 KiB).")
        var text: String

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(conversation, "--conversation")
            try requireID(messageId, "--message-id")
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.PostCustomerMessageRequest()
                request.conversationId = conversation
                request.channelId = channel ?? ""
                request.messageId = messageId
                request.text = text
                let response = try await global.client().sessions.postCustomerMessage(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct RepMessage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rep-message",
            abstract: "Post the owning rep's message on a session.",
            discussion: "The rep's first message after the customer's last one starts the customer inactivity countdown, when the channel has one.")

        @Argument(help: "Session id.")
        var id: String

        @Option(help: "Message id (idempotency key, unique per message).")
        var messageId: String

        @Option(help: "Message text (required by the server, at most 32 KiB).")
        var text: String

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(messageId, "--message-id")
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.PostRepMessageRequest()
                request.sessionId = id
                request.messageId = messageId
                request.text = text
                let response = try await global.client().sessions.postRepMessage(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct MarkInactive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mark-inactive",
            abstract: "Mark an ACTIVE session's customer inactive (\"Customer Inactive\"), freeing the rep's capacity.",
            discussion: "Only the owning rep or an admin may; standard channels never support INACTIVE.")

        @Argument(help: "Session id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.MarkInactiveRequest()
                request.sessionId = id
                let response = try await global.client().sessions.markInactive(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a session (\"End Chat\"); a later customer message opens a new session.")

        @Argument(help: "Session id.")
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await runCall {
                var request = SessionsV1.EndSessionRequest()
                request.sessionId = id
                let response = try await global.client().sessions.endSession(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a business-initiated session toward a customer (NEW, owned by the rep, no capacity used).",
            discussion: "The customer's first reply makes it ACTIVE with that rep if available, else routes it.")

        @Option(help: "Rep who reaches out and owns the session.")
        var rep: String

        @Option(help: "Conversation id of the customer.")
        var conversation: String

        @Option(help: "Channel id to write on.")
        var channel: String

        @Option(help: "Id of an optional first outbound message.")
        var messageId: String?

        @Option(help: "Text of the first outbound message (needs --message-id).")
        var text: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try requireID(rep, "--rep")
            try requireID(conversation, "--conversation")
            try requireID(channel, "--channel")
            if text != nil, messageId == nil { throw ValidationError("--text needs --message-id") }
            if messageId != nil, text == nil { throw ValidationError("--message-id needs --text (the server refuses a message without text)") }
        }

        func run() async throws {
            try await runCall {
                var request = SessionsV1.StartBusinessInitiatedRequest()
                request.repId = rep
                request.conversationId = conversation
                request.channelId = channel
                request.messageId = messageId ?? ""
                request.text = text ?? ""
                let response = try await global.client().sessions.startBusinessInitiated(request, options: try global.callOptions())
                printSessionResponse(response, json: global.wantsJSON)
            }
        }
    }
}

// MARK: - Output

func printSessionResponse(_ response: SessionsV1.SessionResponse, json: Bool) {
    if json {
        printJSON(response)
        return
    }
    guard let session = response.session else {
        say("(the server returned no session)")
        return
    }
    var fields = sessionFields(session)
    if response.replayed {
        fields.append(("replayed", "yes (an existing session or message; nothing changed)"))
    }
    say(fieldBlock(fields))
}

func sessionFields(_ s: SessionsV1.Session) -> [(String, String)] {
    var fields: [(String, String)] = [
        ("id", s.id),
        ("status", statusName(s.status)),
        ("conversation", s.conversationId),
        ("channel", s.channelId),
        ("rep", s.repId.isEmpty ? "none" : s.repId),
        ("created", isoTime(s.createdAtMs)),
        ("updated", isoTime(s.updatedAtMs)),
    ]
    if s.queuedAtMs != 0 { fields.append(("queued since", isoTime(s.queuedAtMs))) }
    if s.inactivityDeadlineMs != 0 { fields.append(("inactive at", isoTime(s.inactivityDeadlineMs) + " (customer inactivity timeout)")) }
    if s.autoEndDeadlineMs != 0 { fields.append(("auto-ends at", isoTime(s.autoEndDeadlineMs))) }
    if s.status == .ended || s.endReason != .unspecified { fields.append(("end reason", reasonName(s.endReason))) }
    fields.append(("version", String(s.version)))
    return fields
}

func sessionTable(_ sessions: [SessionsV1.Session]) -> Table {
    var table = Table(["ID", "STATUS", "CHANNEL", "CONVERSATION", "REP", "CREATED", "UPDATED"])
    for s in sessions {
        table.add([s.id, statusName(s.status), s.channelId, s.conversationId, s.repId, isoTime(s.createdAtMs), isoTime(s.updatedAtMs)])
    }
    return table
}
