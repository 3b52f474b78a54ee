import Foundation
import RPC
import SessionAPI
import SessionClient
import Testing

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

