import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import Testing

/// Several real sessiond processes on one PostgreSQL database, and that
/// database going away.
@Suite("Several sessiond instances on one PostgreSQL", .serialized)
struct PostgresInstancesTests {
    @Test("Two instances race: no session routed twice, capacity never overdrawn, timers fire once, gapless event log, watches see the other instance")
    func twoInstancesRace() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let dirA = makeTemporaryDirectory(), dirB = makeTemporaryDirectory()
        defer { removeDirectory(dirA); removeDirectory(dirB) }
        let t0: Int64 = 1_800_000_000_000
        let common = ["--store", url, "--test-clock", "--test-clock-start-ms", "\(t0)", "--sweep-interval-ms", "20"]
        let a = try DaemonProcess.start(dataDirectory: dirA, arguments: common)
        let b = try DaemonProcess.start(dataDirectory: dirB, arguments: common)
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            let clientA = try a.client(), clientB = try b.client()

            // Few slots (3 reps x capacity 2), many customers.
            try await setUpChannelAndReps(clientA, reps: 3, capacity: 2, autoEndMs: 600_000)

            // A watcher on B follows everything, including what A writes.
            let watched = Shared<[Int64]>([])
            let watcher = Task {
                for try await event in clientB.events.watchEvents(SessionsV1.WatchEventsRequest()) {
                    watched.withLock { $0.append(event.cursor) }
                }
            }

            // 40 customers write at once, half through each instance.
            let sessions = try await withThrowingTaskGroup(of: SessionsV1.Session.self) { group in
                for i in 0..<40 {
                    let client = i % 2 == 0 ? clientA : clientB
                    group.addTask { try await customerMessage(client, conversation: "race-\(i)", channel: "web", message: "race-\(i)-m1").session! }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(sessions.map(\.id)).count == 40)

            // Mark every ACTIVE session inactive through A while its customer replies through B.
            let active = try await listAll(clientA).filter { $0.status == .active }
            #expect(active.count == 6, "3 reps x capacity 2 are all in use")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, s) in active.enumerated() {
                    group.addTask {
                        var mark = SessionsV1.MarkInactiveRequest()
                        mark.sessionId = s.id
                        _ = try? await clientA.sessions.markInactive(mark)
                    }
                    group.addTask {
                        _ = try? await customerMessage(clientB, conversation: s.conversationId, channel: "web", message: "\(s.conversationId)-reply-\(i)")
                    }
                }
                try await group.waitForAll()
            }

            // Capacity is never overdrawn, whichever instance routed.
            for r in 0..<3 {
                var w = SessionsV1.GetRepRequest()
                w.repId = "rep-\(r)"
                let load = try await clientB.reps.getWorkload(w)
                #expect(load.used <= load.capacity, "rep-\(r) is over capacity")
                #expect(Int(load.used) == load.activeSessions.count)
            }

            // Every INACTIVE session's auto-end is due on both instances at once.
            let inactive = try await listAll(clientA).filter { $0.status == .inactive }.map(\.id)
            var advance = SessionsV1.AdvanceClockRequest()
            advance.byMs = 11 * 60_000
            async let x = clientA.clock.advanceClock(advance)
            async let y = clientB.clock.advanceClock(advance)
            _ = try await (x, y)
            for id in inactive {
                var get = SessionsV1.GetSessionRequest()
                get.sessionId = id
                let deadline = Date().addingTimeInterval(5)
                while try await clientA.sessions.getSession(get).session!.status != .ended, Date() < deadline {
                    try await Task.sleep(nanoseconds: 20_000_000)
                }
            }

            // The event log: per session gapless, each timer fired once, nobody routed twice at once.
            var allCursors: [Int64] = []
            for s in try await listAll(clientA) {
                var l = SessionsV1.ListEventsRequest()
                l.sessionId = s.id
                let log = try await clientB.events.listEvents(l).events
                #expect(log.map(\.sequence) == Array(1...Int64(log.count)), "gap in \(s.id)")
                for (prev, next) in zip(log, log.dropFirst()) {
                    #expect(prev.toStatus == next.fromStatus, "\(s.id): \(prev.toStatus) then \(next.fromStatus)")
                }
                #expect(log.filter { $0.reason == .autoEnded }.count <= 1)
                if inactive.contains(s.id) { #expect(log.last?.reason == .autoEnded) }
                allCursors += log.map(\.cursor)
            }
            #expect(Set(allCursors).count == allCursors.count, "a cursor was used twice")

            // The watcher on B saw every event, A's included, once and in order.
            let deadline = Date().addingTimeInterval(5)
            while watched.value.count < allCursors.count, Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
            watcher.cancel()
            #expect(watched.value == allCursors.sorted())
            #expect(a.terminate() == 0)
            #expect(b.terminate() == 0)
        }
    }

    @Test("The database goes away: calls fail with UNAVAILABLE, sessiond keeps running and recovers when it returns")
    func databaseGoesAway() async throws {
        let server = try PostgresTestServer.start()
        defer { server.destroy() }
        let url = try server.makeDatabase()
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: ["--store", url])
        try await DaemonProcess.withLogsOnFailure([daemon]) {
            let client = try daemon.client()
            try await setUpChannelAndReps(client, reps: 1)
            _ = try await customerMessage(client, conversation: "before", channel: "web", message: "before-m")

            try server.stop()
            do {
                _ = try await customerMessage(client, conversation: "during", channel: "web", message: "during-m")
                Issue.record("a write succeeded with the database stopped")
            } catch {
                #expect((error as? RPCError)?.code == .unavailable, "\(error)")
            }
            #expect(daemon.process.isRunning)
            var health = GrpcHealthV1.HealthCheckRequest()
            health.service = ""
            #expect(try await client.health.check(health).status == .serving, "the RPC server itself keeps serving")

            try server.restart()
            var recovered = false
            let deadline = Date().addingTimeInterval(15)
            while !recovered, Date() < deadline {
                do {
                    _ = try await customerMessage(client, conversation: "after", channel: "web", message: "after-m")
                    recovered = true
                } catch {
                    try await Task.sleep(nanoseconds: 100_000_000)
                }
            }
            #expect(recovered, "sessiond did not recover after the database came back")
            #expect(try await openSessions(client, conversation: "before").count == 1)
            #expect(try await openSessions(client, conversation: "during").isEmpty)
            #expect(daemon.terminate() == 0)
        }
    }
}

func listAll(_ client: SessionClient) async throws -> [SessionsV1.Session] {
    var all: [SessionsV1.Session] = []
    var request = SessionsV1.ListSessionsRequest()
    request.pageSize = 1000
    repeat {
        let page = try await client.sessions.listSessions(request)
        all += page.sessions
        request.pageToken = page.nextPageToken
    } while !request.pageToken.isEmpty
    return all
}
