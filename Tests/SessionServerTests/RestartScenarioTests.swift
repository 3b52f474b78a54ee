import Foundation
import RPC
import SessionAPI
import SessionClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Restarts on the same data directory: durable timers and acknowledged writes.
@Suite("Restart")
struct RestartScenarioTests {
    @Test("Restart with timers overdue: an INACTIVE session ENDS (auto-ended) shortly after start, with no RPC moving the clock")
    func overdueTimersFireAfterRestart() async throws {
        let dir = TestDaemon.makeTemporaryDirectory()
        defer { TestDaemon.removeDirectory(dir) }

        let first = try TestDaemon(directory: dir)
        let inactive: Session
        let counting: Session
        let control: Session
        let repToken: String
        let stoppedAt: Int64
        do {
            try await first.advance(Millis.hour)  // a test clock's offset is durable: it survives the restart
            try await first.createChannel("web", .enhancedWebChatV2, inactivityTimeoutMs: 5 * Millis.minute)
            try await first.createRep("alice", capacity: 5)
            repToken = try await first.issueToken(.rep, repId: "alice", name: "alice-desktop")
            let alice = try first.client(token: repToken)
            inactive = try await first.customerWrites("goes-quiet", on: "web")
            try await first.markInactive(inactive.id, via: alice)
            counting = try await first.customerWrites("counting-down", on: "web")
            try await first.repWrites(counting.id, via: alice)
            control = try await first.customerWrites("control", on: "web")
            stoppedAt = try await first.now()
            #expect(try await first.session(inactive.id).status == .inactive)
        } catch {
            await first.stop(removingDirectory: false)
            throw error
        }
        await first.stop(removingDirectory: false)

        // 25 hours later on the wall clock; nobody calls AdvanceClock. The
        // persisted 1 h offset still applies on top of the new wall clock.
        let restartedAt = stoppedAt + 25 * Millis.hour
        let second = try TestDaemon(directory: dir, clockStart: restartedAt - Millis.hour)
        do {
            let ended = try await eventually(within: 5) { try await second.session(inactive.id).status == .ended }
            #expect(ended, "the overdue auto-end fired on the first sweep")
            let s = try await second.session(inactive.id)
            #expect(s.endReason == .autoEnded)
            let last = try #require(try await second.events(inactive.id).last)
            #expect(last.fromStatus == .inactive && last.toStatus == .ended && last.reason == .autoEnded)
            #expect(last.actor?.kind == .actorSystem)
            #expect(last.timeMs == restartedAt)

            // The overdue customer-inactivity countdown fired too; its 24 h auto-end counts from when
            // the countdown expired (25 h ago), so that session ends as well.
            let timedOut = try await eventually(within: 5) { try await second.session(counting.id).status == .ended }
            #expect(timedOut)
            let reasons = try await second.events(counting.id).suffix(2).map(\.reason)
            #expect(reasons == [.customerInactivityTimeout, .autoEnded])
            #expect(try await second.session(control.id).status == .active, "a session without a deadline is untouched")
            #expect(try await second.workload("alice").activeSessions.map(\.id) == [control.id])
            #expect(try await second.now() == restartedAt, "no RPC moved the clock")
            // Tokens issued before the restart still work.
            let alice = try second.client(token: repToken)
            #expect(try await alice.tokens.whoAmI(.init()).repId == "alice")
        } catch {
            await second.stop(removingDirectory: false)
            throw error
        }
        await second.stop(removingDirectory: false)
    }

    /// Everything an admin can read back.
    struct Snapshot: Equatable {
        var channels: [Channel]
        var reps: [Rep]
        var sessions: [Session]
        var events: [[Event]]
        var tokens: [SessionsV1.TokenInfo]
        var workloads: [SessionsV1.WorkloadResponse]

        static func take(_ d: TestDaemon) async throws -> Snapshot {
            let sessions = try await d.sessions()
            var events: [[Event]] = []
            for s in sessions { events.append(try await d.events(s.id)) }
            let reps = try await d.admin.reps.listReps(.init()).reps
            var workloads: [SessionsV1.WorkloadResponse] = []
            for r in reps { workloads.append(try await d.workload(r.id)) }
            return Snapshot(
                channels: try await d.admin.channels.listChannels(.init()).channels,
                reps: reps, sessions: sessions, events: events,
                tokens: try await d.admin.tokens.listTokens(.init()).tokens,
                workloads: workloads)
        }
    }

    @Test("Durability: every write answered OK is still there after a clean restart")
    func acknowledgedWritesSurviveRestart() async throws {
        let dir = TestDaemon.makeTemporaryDirectory()
        defer { TestDaemon.removeDirectory(dir) }

        let first = try TestDaemon(directory: dir, synchronousCommits: true)
        let before: Snapshot
        let inactiveId: String
        let serviceToken: String
        do {
            let d = first
            try await d.createChannel("web", .enhancedWebChatV2, model: .statusBased, weight: 2, inactivityTimeoutMs: 10 * Millis.minute)
            try await d.createChannel("wa", .enhancedWhatsapp, autoEndAfterMs: 2 * Millis.hour, hidden: true)
            try await d.createChannel("sms", .standardSms)
            try await d.createRep("alice", capacity: 4)
            try await d.createRep("bob", capacity: 2, permissions: [.messagingAgent], presence: .busy)
            try await d.createRep("carol", capacity: 1, permissions: [], presence: .offline)
            try await d.grant(.enhancedChatUser, to: "carol")
            try await d.revoke(.messagingAgent, from: "alice")
            var update = SessionsV1.RepRequest()
            var bob = Rep()
            bob.id = "bob"
            bob.displayName = "Bob B."
            bob.capacity = 3
            update.rep = bob
            _ = try await d.admin.reps.updateRep(update)
            serviceToken = try await d.issueToken(.service, name: "whatsapp-bridge")
            let service = try d.client(token: serviceToken)
            let alice = try await d.repClient("alice")

            let active = try await d.customerWrites("c-active", on: "web", messageId: "msg-active", via: service)
            try await d.repWrites(active.id, via: alice)
            let inactive = try await d.customerWrites("c-inactive", on: "web", via: service)
            try await d.markInactive(inactive.id, via: alice)
            inactiveId = inactive.id
            let waiting = try await d.customerWrites("c-waiting", on: "wa", via: service)
            #expect(waiting.status == .waiting, "only bob may take WhatsApp and he is busy")
            let ended = try await d.customerWrites("c-ended", on: "sms", via: service)
            try await d.end(ended.id, via: service)
            var bi = SessionsV1.StartBusinessInitiatedRequest()
            bi.repId = "alice"
            bi.conversationId = "c-new"
            bi.channelId = "web"
            _ = try await alice.sessions.startBusinessInitiated(bi)
            before = try await Snapshot.take(d)
            #expect(Set(before.sessions.map(\.status)) == [.active, .inactive, .waiting, .ended, .new])
        } catch {
            await first.stop(removingDirectory: false)
            throw error
        }
        await first.stop(removingDirectory: false)

        let second = try TestDaemon(directory: dir, synchronousCommits: true)
        do {
            let after = try await Snapshot.take(second)
            #expect(after.channels == before.channels)
            #expect(after.reps == before.reps)
            #expect(after.sessions == before.sessions)
            #expect(after.events == before.events)
            #expect(after.tokens == before.tokens)
            #expect(after.workloads == before.workloads)

            // Message ids and tokens are durable too: a retry is recognised, the old token still works.
            let service = try second.client(token: serviceToken)
            var retry = SessionsV1.PostCustomerMessageRequest()
            retry.conversationId = "c-active"
            retry.channelId = "web"
            retry.messageId = "msg-active"
            retry.text = "hello"
            #expect(try await service.sessions.postCustomerMessage(retry).replayed)
            // So are deadlines: the inactive session still ends 24 h after it was marked.
            try await second.advance(Millis.day)
            #expect(try await second.session(inactiveId).endReason == .autoEnded)
        } catch {
            await second.stop(removingDirectory: false)
            throw error
        }
        await second.stop(removingDirectory: false)
    }
}

/// A real `sessiond` process, so that it can be killed with SIGKILL.
final class SessiondProcess: Sendable {
    static var binary: String? {
        let dir = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        for candidate in [dir, (dir as NSString).deletingLastPathComponent] {
            let path = (candidate as NSString).appendingPathComponent("sessiond")
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    let process: Process
    let port: Int

    init(dataDirectory: String) throws {
        guard let binary = Self.binary else { throw MissingBinary() }
        port = freeLocalPort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory, "--admin-token", TestDaemon.adminSecret,
            "--log-level", "critical", "--no-test-service", "--durability", "full",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the health service answers.
    func waitUntilServing(_ client: SessionClient) async -> Bool {
        await eventually(within: 10) {
            (try? await client.health.check(.init(), options: .init(timeout: .milliseconds(500))).status) == .serving
        }
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    struct MissingBinary: Error {}
}

/// A port that was free a moment ago (bind to port 0, read it, close).
func freeLocalPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

@Suite("Crash")
struct CrashScenarioTests {
    @Test("Durability: every write answered OK survives a kill -9 of sessiond, even with writes in flight",
          .enabled(if: SessiondProcess.binary != nil, "needs the sessiond executable beside the test bundle"))
    func acknowledgedWritesSurviveKill9() async throws {
        let dir = TestDaemon.makeTemporaryDirectory()
        defer { TestDaemon.removeDirectory(dir) }

        let first = try SessiondProcess(dataDirectory: dir)
        defer { first.kill9() }
        let admin = try SessionClient(address: "127.0.0.1:\(first.port)", token: TestDaemon.adminSecret)
        defer { admin.close() }
        guard await first.waitUntilServing(admin) else {
            first.kill9()
            Issue.record("sessiond did not start")
            return
        }
        var channel = SessionsV1.ChannelRequest()
        var c = Channel()
        c.id = "web"
        c.type = .enhancedWebChatV2
        channel.channel = c
        _ = try await admin.channels.createChannel(channel)
        let connections = try (0..<4).map { _ in try SessionClient(address: "127.0.0.1:\(first.port)", token: TestDaemon.adminSecret) }
        defer { for connection in connections { connection.close() } }

        // Customers keep writing on four connections; sessiond is killed in the middle of it.
        let acknowledged = Locked<[String: String]>([:])  // conversation -> session id
        let writers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (w, client) in connections.enumerated() {
                    group.addTask {
                        for n in 0..<100_000 {
                            var r = SessionsV1.CreateSessionRequest()
                            r.conversationId = "crash-\(w)-\(n)"
                            r.channelId = "web"
                            guard let response = try? await client.sessions.createSession(r, options: .init(timeout: .seconds(5))) else {
                                return  // the server is gone
                            }
                            acknowledged.withLock { $0[r.conversationId] = response.session?.id ?? "" }
                        }
                    }
                }
            }
        }
        _ = await eventually(within: 10) { acknowledged.withLock { $0.count } >= 100 }
        first.kill9()
        await writers.value
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= 100)

        let second = try SessiondProcess(dataDirectory: dir)
        defer { second.kill9() }
        let after = try SessionClient(address: "127.0.0.1:\(second.port)", token: TestDaemon.adminSecret)
        defer { after.close() }
        #expect(await second.waitUntilServing(after))
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
}
