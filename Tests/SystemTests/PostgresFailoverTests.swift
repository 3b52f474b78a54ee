import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One partition, two real sessiond processes on one PostgreSQL: the owner dies, is paused past
/// its lease, or stops cleanly, and the standby takes over.
@Suite("Partition ownership on PostgreSQL: failover and fencing", .serialized)
struct PostgresFailoverTests {
    /// Short, so that the tests wait little; long enough that a loaded machine does not lose
    /// leases by itself (the owner pings every lease/4).
    static let leaseMillis: Int64 = 2_000
    static let t0: Int64 = 1_800_000_000_000

    static func arguments(_ url: String, lease: Int64 = leaseMillis) -> [String] {
        ["--store", url, "--partition-lease-ms", "\(lease)", "--test-clock", "--test-clock-start-ms", "\(t0)"]
    }

    /// Starts the owner, waits until it owns the partition, then a standby.
    static func startPair(_ url: String, lease: Int64 = leaseMillis, extra: [String] = []) async throws -> (owner: DaemonProcess, standby: DaemonProcess) {
        let dirA = makeTemporaryDirectory(), dirB = makeTemporaryDirectory()
        let a = try DaemonProcess.start(dataDirectory: dirA, arguments: arguments(url, lease: lease) + extra)
        guard await a.logBuffer.waitFor("owning the partition", until: Date().addingTimeInterval(30)) else {
            a.recordLog("the first instance never owned the partition")
            throw SystemTestError("no owner")
        }
        let b = try DaemonProcess.start(dataDirectory: dirB, arguments: arguments(url, lease: lease) + extra)
        guard await b.logBuffer.waitFor("standing by", until: Date().addingTimeInterval(30)) else {
            b.recordLog("the second instance did not stand by")
            throw SystemTestError("no standby")
        }
        return (a, b)
    }

    @Test("kill -9 of the owner under load: the standby serves within lease + 5 s, no acknowledged change is lost, logs stay gapless, timers fire once")
    func ownerKilledUnderLoad() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b) = try await Self.startPair(url)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            let clientA = try a.client(), clientB = try b.client()
            defer { clientA.close(); clientB.close() }
            // Set up through the standby: its calls are forwarded to the owner.
            try await setUpChannelAndReps(clientB, reps: 4, capacity: 100, autoEndMs: 600_000)
            let ledger = Shared(JournalCrashTests.Ledger())

            // Sessions with an auto-end timer pending across the failover.
            var inactive: [String] = []
            for i in 0..<5 {
                let conversation = "timer-\(i)"
                ledger.withLock { _ = $0.sent.insert(conversation) }
                let session = try await customerMessage(clientB, conversation: conversation, channel: "web", message: "timer-m\(i)").session!
                var mark = SessionsV1.MarkInactiveRequest()
                mark.sessionId = session.id
                let marked = try await clientA.sessions.markInactive(mark).session!
                #expect(marked.status == .inactive)
                ledger.withLock { $0.acked[conversation] = (session.id, marked.status) }
                inactive.append(session.id)
            }

            // Writers through both instances, until told to stop.
            let stop = Shared(false)
            let writers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for w in 0..<6 {
                        let client = w < 2 ? clientA : clientB
                        group.addTask {
                            var n = w
                            while !stop.value {
                                let conversation = "load-\(n)"
                                n += 6
                                ledger.withLock { _ = $0.sent.insert(conversation) }
                                do {
                                    let session = try await customerMessage(client, conversation: conversation, channel: "web", message: "m-\(conversation)").session!
                                    ledger.withLock { l in
                                        l.acked[conversation] = (session.id, session.status)
                                        l.answers += 1
                                    }
                                } catch {
                                    // Refused or cut off by the failover: back off a little, go on.
                                    try? await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                    }
                }
            }
            #expect(await waitUntil(seconds: 30) { ledger.value.answers >= 100 }, "the load never got going")

            a.kill9()
            let killed = Date()
            // The first successful write through the standby after the kill.
            var probe = 0
            var servedAt: Date?
            while servedAt == nil, Date().timeIntervalSince(killed) < Double(Self.leaseMillis) / 1000 + 15 {
                probe += 1
                let conversation = "probe-\(probe)"
                ledger.withLock { _ = $0.sent.insert(conversation) }
                if let session = try? await customerMessage(clientB, conversation: conversation, channel: "web", message: "probe-m\(probe)").session {
                    ledger.withLock { $0.acked[conversation] = (session.id, session.status) }
                    servedAt = Date()
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let failover = servedAt.map { $0.timeIntervalSince(killed) }
            #expect(failover != nil && failover! <= Double(Self.leaseMillis) / 1000 + 5,
                    "the standby served \(failover.map { "\($0) s" } ?? "nothing") after the owner was killed")
            #expect(b.logText.contains("owning the partition"))

            // More load on the new owner, then stop the writers.
            let before = ledger.value.answers
            #expect(await waitUntil(seconds: 30) { ledger.value.answers >= before + 50 }, "the new owner did not take the load")
            stop.withLock { $0 = true }
            await writers.value

            // Every acknowledged change is in the database, nothing else, logs gapless, capacity consistent.
            let problems = try JournalCrashTests.check(postgres: url, against: ledger.value)
            #expect(problems.isEmpty, "\(problems.prefix(10))")

            // The timers armed by the old owner fire on the new one, once each.
            var advance = SessionsV1.AdvanceClockRequest()
            advance.byMs = 11 * 60_000
            _ = try await clientB.clock.advanceClock(advance)
            for id in inactive {
                var get = SessionsV1.GetSessionRequest()
                get.sessionId = id
                #expect(await waitUntil(seconds: 10) { (try? await clientB.sessions.getSession(get).session?.status) == .ended }, "\(id) did not auto-end")
                var list = SessionsV1.ListEventsRequest()
                list.sessionId = id
                let log = try await clientB.events.listEvents(list).events
                #expect(log.filter { $0.reason == .autoEnded }.count == 1, "\(id): \(log.map(\.reason))")
                #expect(log.map(\.sequence) == Array(1...Int64(log.count)))
            }
            #expect(b.terminate() == 0)
        }
    }

    /// Whether every thread of `pid` is stopped (state T in /proc/PID/task/*/stat).
    static func isStopped(_ pid: Int32) -> Bool {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        guard !tasks.isEmpty else { return false }
        return tasks.allSatisfy { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            return stat[stat.index(close, offsetBy: 2)] == "T"
        }
    }

    @Test("SIGSTOP the owner past its lease: the standby takes over; after SIGCONT the old owner refuses the write it held with UNAVAILABLE, never a false OK, gives the tenant up and forwards later calls to the new owner")
    func pausedOwnerIsFenced() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b) = try await Self.startPair(url)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            let clientA = try a.client(), clientB = try b.client()
            defer { clientA.close(); clientB.close() }
            try await setUpChannelAndReps(clientA, reps: 2, capacity: 10)
            let early = try await customerMessage(clientA, conversation: "early", channel: "web", message: "early-m").session!

            kill(a.process.processIdentifier, SIGSTOP)
            var resumed = false
            defer { if !resumed { kill(a.process.processIdentifier, SIGCONT) } }
            // A stop is not instant: the thread that takes the signal stops the others once it
            // runs, and on a loaded machine the others may go on for milliseconds (they once
            // committed the write below, legitimately, before they stopped). Wait until every
            // thread is stopped.
            #expect(await waitUntil(seconds: 10) { Self.isStopped(a.process.processIdentifier) }, "sessiond did not stop")
            // A write sent to the paused owner waits in its socket.
            let stale = Task { () -> Result<SessionsV1.Session?, RPCError> in
                var m = SessionsV1.PostCustomerMessageRequest()
                m.conversationId = "stale"
                m.channelId = "web"
                m.messageId = "stale-m"
                m.text = "written to a paused owner"
                do { return .success(try await clientA.sessions.postCustomerMessage(m, options: .init(timeout: .seconds(60))).session) }
                catch let error as RPCError { return .failure(error) } catch { return .failure(RPCError(.unknown, "\(error)")) }
            }
            guard await b.logBuffer.waitFor("owning the partition", until: Date().addingTimeInterval(Double(Self.leaseMillis) / 1000 + 20)) else {
                throw SystemTestError("the standby never took over from the paused owner")
            }
            let fresh = try await customerMessage(clientB, conversation: "fresh", channel: "web", message: "fresh-m").session!
            #expect(fresh.status == .active)

            kill(a.process.processIdentifier, SIGCONT)
            resumed = true
            switch await stale.value {
            case .success(let session):
                // Thrown, so that both instances' logs are recorded.
                throw SystemTestError("the fenced owner answered OK: \(String(describing: session))")
            case .failure(let error):
                #expect(error.code == .unavailable, "\(error)")
            }
            // It gave the tenant up, and goes on running as a standby for it: a later write
            // through it reaches the new owner (refused with UNAVAILABLE only while it finds out).
            var forwarded: SessionsV1.Session?
            let deadline = Date().addingTimeInterval(20)
            while forwarded == nil, Date() < deadline {
                do {
                    forwarded = try await customerMessage(clientA, conversation: "later", channel: "web", message: "later-m").session
                } catch let error as RPCError where error.code == .unavailable {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(forwarded?.status == .active, "a write through the fenced owner never reached the new owner")
            #expect(a.process.isRunning, "the fenced owner stopped")
            #expect(a.logText.contains("lost a tenant"))

            // The database holds what the new owner wrote and nothing of the fenced writes.
            #expect(try await openSessions(clientB, conversation: "stale").isEmpty)
            #expect(try await openSessions(clientB, conversation: "later").map(\.id) == [forwarded?.id].compactMap { $0 })
            #expect(try await openSessions(clientB, conversation: "fresh").map(\.id) == [fresh.id])
            #expect(try await openSessions(clientB, conversation: "early").map(\.id) == [early.id])
            #expect(a.terminate() == 0)
            #expect(b.terminate() == 0)
        }
    }

    @Test("SIGTERM hands the partition over at once: the standby serves long before the lease would expire")
    func cleanStopHandsOver() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let lease: Int64 = 60_000
        let (a, b) = try await Self.startPair(url, lease: lease)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            let clientB = try b.client()
            defer { clientB.close() }
            try await setUpChannelAndReps(clientB, reps: 1)
            let before = try await customerMessage(clientB, conversation: "before", channel: "web", message: "before-m").session!
            #expect(!b.logText.contains("owning the partition"), "the standby served its own calls before the handover")

            let stopped = Date()
            #expect(a.terminate() == 0)
            var served: Date?
            while served == nil, Date().timeIntervalSince(stopped) < 20 {
                if (try? await customerMessage(clientB, conversation: "after", channel: "web", message: "after-m")) != nil {
                    served = Date()
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let handover = served.map { $0.timeIntervalSince(stopped) }
            #expect(handover != nil && handover! < 5, "served \(handover.map { "\($0) s" } ?? "nothing") after SIGTERM with a \(lease / 1000) s lease")
            #expect(b.logText.contains("owning the partition"))
            #expect(try await openSessions(clientB, conversation: "before").map(\.id) == [before.id])
            #expect(b.terminate() == 0)
        }
    }

    @Test("A standby passes on more calls at once than the owner takes on one connection")
    func forwardingIsNotCappedByOneConnection() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b) = try await Self.startPair(url, extra: ["--max-concurrent-calls", "4"])
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            let setup = try b.client()
            defer { setup.close() }
            try await setUpChannelAndReps(setup, reps: 1)
            _ = try await customerMessage(setup, conversation: "c", channel: "web", message: "m")
            // 9 watches open at once through the standby (3 connections x 3, under the standby's own
            // limit of 4 per connection), more than the owner takes on any one connection.
            let clients = try (0..<3).map { _ in try b.client() }
            defer { for c in clients { c.close() } }
            let opened = Shared(0)
            var watches: [Task<Void, any Error>] = []
            for client in clients {
                for _ in 0..<3 {
                    watches.append(Task {
                        var first = true
                        for try await _ in client.events.watchEvents(SessionsV1.WatchEventsRequest()) where first {
                            first = false
                            opened.withLock { $0 += 1 }
                        }
                    })
                }
            }
            #expect(await waitUntil(seconds: 20) { opened.value == 9 }, "only \(opened.value) of 9 watches got their first event")
            // And a call beside them still goes through.
            _ = try await customerMessage(setup, conversation: "d", channel: "web", message: "m2")
            for w in watches { w.cancel() }
            for w in watches { _ = await w.result }
            #expect(b.terminate() == 0)
            #expect(a.terminate() == 0)
        }
    }
}
