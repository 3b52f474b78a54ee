import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import Synchronization
import Testing

/// Process-level faults on the embedded SQLite store: kill -9 under write
/// load, restart with overdue timers, SIGTERM under load.
@Suite("Faults with a real sessiond process", .serialized)
struct CrashAndShutdownTests {
    @Test("kill -9 under write load: every acknowledged change survives, no refused one appears, overdue timers fire after restart",
          arguments: ["sqlite", "postgres"])
    func killNineUnderWriteLoad(store: String) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let storeArguments = store == "sqlite" ? [] : ["--store", try PostgresTestServer.makeDatabase()]
        let t0: Int64 = 1_800_000_000_000
        let first = try DaemonProcess.start(dataDirectory: dir, arguments: storeArguments + ["--test-clock", "--test-clock-start-ms", "\(t0)", "--durability", "full"])
        try await DaemonProcess.withLogsOnFailure([first]) {
            let admin = try first.client()
            try await setUpChannelAndReps(admin, autoEndMs: 600_000)

            // A session that will be INACTIVE with its auto-end due at t0 + 10 min.
            let inactive = try await customerMessage(admin, conversation: "timer-conv", channel: "web", message: "timer-m1").session!
            #expect(inactive.status == .active)
            var mark = SessionsV1.MarkInactiveRequest()
            mark.sessionId = inactive.id
            _ = try await admin.sessions.markInactive(mark)

            // Write load from several connections; some writes are refused on purpose.
            let acknowledged = Shared<[String]>([])
            let refused = Shared<[String]>([])
            let stop = Shared(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        let client = try first.client()
                        var i = 0
                        while !stop.value {
                            i += 1
                            let conversation = "w\(worker)-c\(i)"
                            let refuse = i % 5 == 0
                            do {
                                _ = try await customerMessage(client, conversation: conversation, channel: refuse ? "no-such-channel" : "web", message: "\(conversation)-m")
                                acknowledged.withLock { $0.append(conversation) }
                            } catch let error as RPCError {
                                if error.code == .notFound { refused.withLock { $0.append(conversation) } }
                                if error.code == .unavailable || error.code == .deadlineExceeded { return }
                            } catch {
                                return
                            }
                        }
                    }
                }
                group.addTask {
                    // Kill once enough writes were acknowledged.
                    while acknowledged.value.count < 300 { try await Task.sleep(nanoseconds: 5_000_000) }
                    first.kill9()
                    stop.withLock { $0 = true }
                }
                try await group.waitForAll()
            }
            let acked = acknowledged.value
            let refusedConversations = refused.value
            #expect(acked.count >= 300)
            #expect(!refusedConversations.isEmpty)

            // Restart 11 minutes later: the auto-end is overdue and fires on the first sweep.
            let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: storeArguments + ["--test-clock", "--test-clock-start-ms", "\(t0 + 660_000)"])
            let after = try daemon.client()
            for conversation in acked {
                let sessions = try await openSessions(after, conversation: conversation)
                #expect(sessions.count == 1, "acknowledged conversation \(conversation) lost")
            }
            for conversation in refusedConversations {
                let sessions = try await openSessions(after, conversation: conversation)
                #expect(sessions.isEmpty, "refused conversation \(conversation) was stored")
            }
            var get = SessionsV1.GetSessionRequest()
            get.sessionId = inactive.id
            let deadline = Date().addingTimeInterval(10)
            var status = SessionsV1.SessionStatus.unspecified
            while Date() < deadline {
                status = try await after.sessions.getSession(get).session!.status
                if status == .ended { break }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            #expect(status == .ended)
            var events = SessionsV1.ListEventsRequest()
            events.sessionId = inactive.id
            let log = try await after.events.listEvents(events).events
            #expect(log.filter { $0.reason == .autoEnded }.count == 1)
            #expect(log.map(\.sequence) == Array(1...Int64(log.count)))
            #expect(daemon.terminate() == 0)
        }
    }

    @Test("SIGTERM under load: in-flight calls finish, new calls are refused, exit status 0")
    func sigtermUnderLoad() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--shutdown-grace", "5", "--test-service"])
        try await DaemonProcess.withLogsOnFailure([daemon]) {
            let client = try daemon.client()
            // Streams that take about 0.5 s each.
            let request: GrpcTesting.StreamingOutputCallRequest = {
                var request = GrpcTesting.StreamingOutputCallRequest()
                request.responseParameters = (0..<5).map { _ in
                    var p = GrpcTesting.ResponseParameters()
                    p.size = 100
                    p.intervalUs = 100_000
                    return p
                }
                return request
            }()
            let started = Shared(0)
            let terminated = Shared<Int32?>(nil)
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        var count = 0
                        for try await _ in client.test.streamingOutputCall(request) {
                            if count == 0 { started.withLock { $0 += 1 } }
                            count += 1
                        }
                        return count
                    }
                }
                while started.value < 20 { try await Task.sleep(nanoseconds: 5_000_000) }
                // Watch health on its own connection: NOT_SERVING says the shutdown began.
                let observer = try daemon.client()
                defer { observer.close() }
                let serving = AsyncStream<Void>.makeStream()
                let notServing = Task {
                    defer { serving.continuation.finish() }
                    for try await update in observer.health.watch() {
                        if update.status == .serving { serving.continuation.yield() }
                        if update.status == .notServing { return true }
                    }
                    return false
                }
                // The watch is open (a connection still in its preface would just be closed).
                for await _ in serving.stream { break }
                let exit = Task.detached { daemon.terminate(timeout: 30) }
                #expect(try await notServing.value, "health never reported NOT_SERVING")
                // While draining, a new call on the shared (going-away) connection is refused;
                // one that raced the SIGTERM may still be served, so wait for the refusal.
                var refusal: RPCError?
                let deadline = Date().addingTimeInterval(30)
                while refusal == nil, Date() < deadline {
                    do {
                        _ = try await client.test.emptyCall(options: .init(timeout: .seconds(5)))
                    } catch let error as RPCError {
                        refusal = error
                    } catch {
                        Issue.record("\(error)")
                        break
                    }
                }
                #expect(refusal?.code == .unavailable, "\(String(describing: refusal))")
                for try await messages in group {
                    #expect(messages == 5, "an in-flight stream was cut short")
                }
                let status = await exit.value ?? -1
                terminated.withLock { $0 = status }
            }
            #expect(terminated.value == 0)
            #expect(daemon.logText.contains("shutting down gracefully"))
        }
    }
}

extension CrashAndShutdownTests {
    @Test("Durability: every write answered OK survives a kill -9 of sessiond, even with writes in flight")
    func acknowledgedWritesSurviveKill9() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let first = try DaemonProcess.start(dataDirectory: dir, arguments: ["--durability", "full"])
        let acked = try await first.withLogOnFailure { () async throws -> [String: String] in
            let admin = try first.client()
            defer { admin.close() }
            var channel = SessionsV1.ChannelRequest()
            var c = SessionsV1.Channel()
            c.id = "web"
            c.type = .enhancedWebChatV2
            channel.channel = c
            _ = try await admin.channels.createChannel(channel)
            let connections = try (0..<4).map { _ in try first.client() }
            defer { for connection in connections { connection.close() } }

            // Customers keep writing on four connections; sessiond is killed once 100 were answered.
            let acknowledged = Shared<[String: String]>([:])  // conversation -> session id
            let enough = AsyncStream<Void>.makeStream()
            let writers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for (w, client) in connections.enumerated() {
                        group.addTask {
                            for n in 0..<100_000 {
                                var r = SessionsV1.CreateSessionRequest()
                                r.conversationId = "crash-\(w)-\(n)"
                                r.channelId = "web"
                                guard let response = try? await client.sessions.createSession(r, options: .init(timeout: .seconds(30))) else {
                                    return  // the server is gone
                                }
                                let count = acknowledged.withLock { $0[r.conversationId] = response.session?.id ?? ""; return $0.count }
                                if count >= 100 { enough.continuation.yield() }
                            }
                        }
                    }
                }
            }
            let watching = Task { for await _ in enough.stream { break } }
            // Also ends if every writer gave up before 100 answers (then the count check fails).
            Task { await writers.value; enough.continuation.finish() }
            await watching.value
            first.kill9()
            await writers.value
            return acknowledged.value
        }
        #expect(acked.count >= 100)

        let second = try DaemonProcess.start(dataDirectory: dir, arguments: ["--durability", "full"])
        try await second.withLogOnFailure {
            let after = try second.client()
            defer { after.close() }
            var stored: [String: String] = [:]
            var page = SessionsV1.ListSessionsRequest()
            page.pageSize = 1000
            repeat {
                let r = try await after.sessions.listSessions(page)
                for s in r.sessions { stored[s.conversationId] = s.id }
                page.pageToken = r.nextPageToken
            } while !page.pageToken.isEmpty
            for (conversation, id) in acked {
                #expect(stored[conversation] == id, "acknowledged session of \(conversation) lost by kill -9")
            }
            var get = SessionsV1.GetChannelRequest()
            get.channelId = "web"
            #expect(try await after.channels.getChannel(get).channel?.type == .enhancedWebChatV2)
        }
        #expect(second.terminate() == 0)
    }

    @Test("SIGTERM with an open event watch: the watch ends UNAVAILABLE with its cursor, sessiond exits long before a 60 s grace")
    func sigtermEndsWatches() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--shutdown-grace", "60"])
        let watcher = try daemon.client()
        defer { watcher.close() }
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: 1)
            _ = try await customerMessage(admin, conversation: "watched", channel: "web", message: "watched-m1")
            let firstEvent = AsyncStream<Void>.makeStream()
            let watch = Task { () -> RPCError? in
                defer { firstEvent.continuation.finish() }
                do {
                    for try await _ in watcher.events.watchEvents(SessionsV1.WatchEventsRequest()) { firstEvent.continuation.yield() }
                    return nil
                } catch let error as RPCError {
                    return error
                } catch {
                    return nil
                }
            }
            for await _ in firstEvent.stream { break }  // the watch is open and replayed the log
            let started = Date()
            let status = daemon.terminate(timeout: 30)
            #expect(status == 0, "sessiond did not exit within 30 s of SIGTERM with a watch open")
            #expect(Date().timeIntervalSince(started) < 30)
            let error = await watch.value
            #expect(error?.code == .unavailable, "\(String(describing: error))")
            #expect(error?.message.contains("after_cursor") == true, "\(String(describing: error))")
        }
    }
}

/// A value shared between tasks.
final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    var value: Value { state.withLock { $0 } }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { state.withLock { body(&$0) } }
}
