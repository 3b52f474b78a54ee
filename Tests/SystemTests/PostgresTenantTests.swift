import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import SessionStorage
import Testing

/// Tenants spread over real sessiond instances on one PostgreSQL: each tenant owned by one
/// instance, calls through any instance reaching it, an owner's death or clean stop handing its
/// tenants to the others.
@Suite("Tenants over several sessiond instances on PostgreSQL", .serialized)
struct PostgresTenantTests {
    static let leaseMillis: Int64 = 2_000
    static let tenants = ["t1", "t2", "t3", "t4", "t5"]

    static func arguments(_ url: String, lease: Int64 = leaseMillis) -> [String] {
        ["--store", url, "--partition-lease-ms", "\(lease)", "--operator-token", TenantTests.operatorToken]
    }

    /// How many tenants `daemon` has taken over so far (its log says each).
    static func taken(_ daemon: DaemonProcess) -> Int {
        daemon.logText.components(separatedBy: "owning the partition").count - 1
    }

    /// `sessiond_partition_lock_tries_total` of `daemon` (-1: not in its metrics).
    static func lockTries(_ daemon: DaemonProcess) async throws -> Int {
        let body = try await HTTPProbeTests.get(daemon.port, "/metrics").body
        let line = body.split(separator: "\n").first { $0.hasPrefix("sessiond_partition_lock_tries_total ") }
        return Int(Double(line?.split(separator: " ").last ?? "") ?? -1)
    }

    static func handedOver(_ daemon: DaemonProcess) -> Int {
        daemon.logText.components(separatedBy: "handing one over").count - 1
    }

    /// A creates the tenants (and owns them all, alone), each gets a channel and reps; then B
    /// joins and takes its share. Returns each tenant's admin token.
    static func startSpread(_ url: String, lease: Int64 = leaseMillis) async throws -> (DaemonProcess, DaemonProcess, [String: String]) {
        let a = try DaemonProcess.start(dataDirectory: makeTemporaryDirectory(), arguments: arguments(url, lease: lease))
        let admins = try await createTenants(tenants, on: a, reps: 2)
        #expect(taken(a) == tenants.count + 1, "alone, A owns the default tenant and every new one")
        let b = try DaemonProcess.start(dataDirectory: makeTemporaryDirectory(), arguments: arguments(url, lease: lease))
        // Six tenants over two instances: three each. A gives three up, one a second; B takes them.
        let spread = await waitUntil(seconds: 30) { taken(b) >= 3 }
        #expect(spread, "B took \(taken(b)) tenants; A handed \(handedOver(a)) over")
        try await Task.sleep(for: .seconds(1.5))  // a second look: nobody takes more than its share
        #expect(taken(b) == 3 && handedOver(a) == 3, "B took \(taken(b)), A handed over \(handedOver(a))")
        return (a, b, admins)
    }

    /// Creates `ids` through `daemon` as the operator, each with a channel and `reps` reps; returns
    /// each tenant's admin token.
    static func createTenants(_ ids: [String], on daemon: DaemonProcess, reps: Int) async throws -> [String: String] {
        var admins: [String: String] = [:]
        let op = try daemon.client(token: TenantTests.operatorToken)
        defer { op.close() }
        for id in ids {
            var create = SessionsV1.CreateTenantRequest()
            create.id = id
            admins[id] = try await op.tenants.createTenant(create).adminToken!.token
            let admin = try daemon.client(token: admins[id]!)
            defer { admin.close() }
            try await setUpChannelAndReps(admin, reps: reps)
        }
        return admins
    }

    /// One sessiond on a fresh database, `tenants` created on it (each with a channel and `reps`
    /// reps); its log is printed if `body` fails.
    static func withInstance(
        tenants ids: [String], reps: Int, _ body: (_ url: String, DaemonProcess, _ admins: [String: String]) async throws -> Void
    ) async throws {
        let url = try PostgresTestServer.makeDatabase()
        let a = try DaemonProcess.start(dataDirectory: makeTemporaryDirectory(), arguments: arguments(url))
        defer { removeDirectory(a.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a]) {
            try await body(url, a, try await createTenants(ids, on: a, reps: reps))
        }
    }

    /// Customer messages for every tenant, through both instances; returns the sessions each
    /// acknowledged, per tenant.
    static func load(_ clients: [DaemonProcess], _ admins: [String: String], round: Int) async throws -> [String: [String]] {
        var acked: [String: [String]] = [:]
        for (i, id) in tenants.enumerated() {
            for (j, daemon) in clients.enumerated() {
                let admin = try daemon.client(token: admins[id]!)
                defer { admin.close() }
                let conversation = "r\(round)-\(i)-\(j)"
                let session = try await customerMessage(admin, conversation: conversation, channel: "web", message: "m-\(conversation)").session!
                acked[id, default: []].append(session.id)
            }
        }
        return acked
    }

    /// Every acknowledged session is there, through `daemon`, with a gapless log.
    static func expectAll(_ acked: [String: [String]], through daemon: DaemonProcess, _ admins: [String: String]) async throws {
        for (id, sessions) in acked {
            let admin = try daemon.client(token: admins[id]!)
            defer { admin.close() }
            let listed = Set(try await admin.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions.map(\.id))
            for session in sessions {
                #expect(listed.contains(session), "tenant \(id) lost acknowledged session \(session)")
                var events = SessionsV1.ListEventsRequest()
                events.sessionId = session
                let log = try await admin.events.listEvents(events).events
                #expect(!log.isEmpty && log.map(\.sequence) == Array(1...Int64(log.count)), "tenant \(id) \(session): \(log.map(\.sequence))")
            }
        }
    }

    @Test("A standby under its share tries the lock of no tenant another instance holds: it reads which are held, once a tick")
    func standbyTriesOnlyFreeLocks() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let a = try DaemonProcess.start(dataDirectory: makeTemporaryDirectory(), arguments: Self.arguments(url))
        defer { removeDirectory(a.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a]) {
            _ = try await Self.createTenants(["t1", "t2", "t3", "t4"], on: a, reps: 1)
            let b = try DaemonProcess.start(dataDirectory: makeTemporaryDirectory(), arguments: Self.arguments(url))
            defer { removeDirectory(b.dataDirectory) }
            try await DaemonProcess.withLogsOnFailure([b]) {
                // Five tenants (the default one too) over two: a share of 3, a floor of 2. A keeps 3,
                // B takes 2 and stays under its share, with every other lock held by A.
                #expect(await waitUntil(seconds: 30) { Self.taken(b) >= 2 }, "B took \(Self.taken(b))")
                try await Task.sleep(for: .seconds(1))
                let before = try await Self.lockTries(b)
                #expect(before > 0, "B took its tenants by trying their locks")
                try await Task.sleep(for: .seconds(1.5))
                let tries = try await Self.lockTries(b) - before
                #expect(Self.taken(b) == 2 && Self.handedOver(a) == 2, "B took \(Self.taken(b)), A handed \(Self.handedOver(a)) over")
                // Trying each of A's three every 100 ms was ~45 round trips in this window.
                #expect(tries == 0, "B tried \(tries) locks A holds")
                #expect(b.terminate() == 0)
            }
            #expect(a.terminate() == 0)
        }
    }

    @Test("Tenants spread evenly over the instances; calls through either reach each tenant's owner; kill -9 of one: the other serves its tenants within lease + 5 s, nothing acknowledged lost")
    func spreadForwardAndFailover() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b, admins) = try await Self.startSpread(url)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            // Through both: every tenant's calls reach its owner, whichever instance they land on.
            var acked = try await Self.load([a, b], admins, round: 1)
            b.kill9()
            let killed = Date()
            // Through A: each of B's tenants is served again within lease + 5 s.
            for id in Self.tenants {
                let admin = try a.client(token: admins[id]!)
                defer { admin.close() }
                var n = 0
                let served = await waitUntil(seconds: Double(Self.leaseMillis) / 1000 + 15) {
                    n += 1
                    guard let s = try? await customerMessage(admin, conversation: "after-\(n)", channel: "web", message: "after-\(id)-\(n)").session else { return false }
                    acked[id, default: []].append(s.id)
                    return true
                }
                let after = Date().timeIntervalSince(killed)
                #expect(served && after <= Double(Self.leaseMillis) / 1000 + 5, "tenant \(id) served \(after) s after the kill")
            }
            let more = try await Self.load([a], admins, round: 2)
            for (id, sessions) in more { acked[id, default: []] += sessions }
            try await Self.expectAll(acked, through: a, admins)
            #expect(a.terminate() == 0)
        }
    }

    @Test("SIGTERM hands an instance's tenants over at once, long before their leases would expire")
    func sigtermHandsOver() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b, admins) = try await Self.startSpread(url, lease: 60_000)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            var acked = try await Self.load([a, b], admins, round: 1)
            let stopped = Date()
            #expect(b.terminate() == 0)
            for id in Self.tenants {
                let admin = try a.client(token: admins[id]!)
                defer { admin.close() }
                var n = 0
                let served = await waitUntil(seconds: 20) {
                    n += 1
                    guard let s = try? await customerMessage(admin, conversation: "after-\(n)", channel: "web", message: "after-\(id)-\(n)").session else { return false }
                    acked[id, default: []].append(s.id)
                    return true
                }
                #expect(served, "tenant \(id) not served \(Date().timeIntervalSince(stopped)) s after B stopped (the lease is 60 s)")
            }
            #expect(Date().timeIntervalSince(stopped) < 20)
            try await Self.expectAll(acked, through: a, admins)
            #expect(a.terminate() == 0)
        }
    }

    @Test("Losing one tenant to another owner stops only that tenant: the instance goes on serving the others, forwards the lost one's calls, and takes it back (reloaded) once it is free")
    func losingOneTenantKeepsTheOthers() async throws {
        try await Self.withInstance(tenants: ["t1", "t2"], reps: 2) { url, a, admins in
            let t1 = try a.client(token: admins["t1"]!), t2 = try a.client(token: admins["t2"]!)
            defer { t1.close(); t2.close() }
            let before = try await customerMessage(t1, conversation: "before", channel: "web", message: "before-m").session!

            // Play another instance taking t1 over: end A's lock session for t1, take the lock
            // before A's next ping can, and bump the epoch as a new owner does.
            let usurper = try PostgresConnection(configuration: .init(url: url))
            let key = PostgresPartitionJournal.lockKey(partition: "t1")
            var taken = false
            for _ in 0..<20 where !taken {
                try usurper.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%(owner of t1)'")
                for _ in 0..<200 where !taken {
                    taken = try usurper.queryOne("SELECT pg_try_advisory_lock($1)", [key]) { try $0.bool(0) } ?? false
                    if !taken { try await Task.sleep(for: .milliseconds(2)) }
                }
            }
            try #require(taken, "could not take t1's lock from the test")
            try usurper.execute("UPDATE partition_owner SET epoch = epoch + 1, address = '127.0.0.1:1' WHERE partition = 't1'")
            #expect(await a.logBuffer.waitFor("lost a tenant", until: Date().addingTimeInterval(Double(Self.leaseMillis) / 1000 + 10)),
                    "A never noticed it lost t1")

            // t2 is served throughout; t1's calls go to its "owner", which does not answer.
            for n in 0..<5 {
                let s = try await customerMessage(t2, conversation: "t2-\(n)", channel: "web", message: "t2-m-\(n)").session!
                #expect(s.status == .active)
            }
            do {
                _ = try await customerMessage(t1, conversation: "while-lost", channel: "web", message: "while-lost-m")
                Issue.record("a write of the lost tenant was accepted")
            } catch let error as RPCError {
                #expect(error.code == .unavailable, "\(error)")
            }
            #expect(a.process.isRunning)
            #expect(a.logText.components(separatedBy: "lost a tenant").count - 1 == 1, "only t1 is lost")

            // Free again: A takes t1 back, loaded from the database.
            try usurper.execute("SELECT pg_advisory_unlock_all()")
            var after: SessionsV1.Session?
            let deadline = Date().addingTimeInterval(20)
            while after == nil, Date() < deadline {
                after = try? await customerMessage(t1, conversation: "after", channel: "web", message: "after-m").session
                if after == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(after?.status == .active, "A did not serve t1 again")
            let open = try await t1.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions.map(\.id)
            #expect(Set(open) == Set([before.id, after?.id].compactMap { $0 }), "\(open)")
            #expect(a.terminate() == 0)
        }
    }

    @Test("Database connections grow with the tenants an instance owns, not with every tenant times every instance")
    func connectionsPerOwnedTenant() async throws {
        let url = try PostgresTestServer.makeDatabase()
        let (a, b, admins) = try await Self.startSpread(url)
        defer { removeDirectory(a.dataDirectory); removeDirectory(b.dataDirectory) }
        try await DaemonProcess.withLogsOnFailure([a, b]) {
            // Every tenant used through both instances (so standbys forward, owners read).
            _ = try await Self.load([a, b], admins, round: 1)
            let observer = try PostgresConnection(configuration: .init(url: url))
            let database = String(url[url.index(after: url.lastIndex(of: "/")!)...])
            func connections() throws -> [(String, Int64)] {
                try observer.query(
                    "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'sessiond%' GROUP BY 1 ORDER BY 1",
                    [database]) { (try $0.string(0), try $0.int64(1)) }
            }
            // Per instance: the main store's pools (2 writers, 4 readers), the group commit, the
            // shared lock try; per tenant owned: its lock connection and one reader.
            let tenants = Self.tenants.count + 1
            let bound = 2 * (2 + 4 + 1 + 1) + 2 * tenants
            let seen = try connections()
            let total = seen.reduce(0) { $0 + Int($1.1) }
            #expect(total <= bound, "\(total) connections for \(tenants) tenants on 2 instances (bound \(bound)): \(seen)")

            // One more tenant (served by A at once): B is now under its share and tries the tenants
            // it does not own every 100 ms, on one kept connection, not a new one per try.
            let op = try a.client(token: TenantTests.operatorToken)
            defer { op.close() }
            var create = SessionsV1.CreateTenantRequest()
            create.id = "t6"
            _ = try await op.tenants.createTenant(create)
            try await Task.sleep(for: .seconds(1.5))
            func established() throws -> Int64 {
                try observer.queryOne("SELECT sessions FROM pg_stat_database WHERE datname = $1", [database]) { try $0.int64(0) } ?? 0
            }
            let before = try established()
            try await Task.sleep(for: .seconds(2))
            let opened = try established() - before
            let now = try connections()
            #expect(opened <= 10, "\(opened) database sessions opened in 2 s of lock tries (\(now))")
            #expect(a.terminate() == 0)
            #expect(b.terminate() == 0)
        }
    }

    @Test("The group commit's connection killed under load, again and again: tenants whose commit had an unknown outcome are reloaded from the database, the instance goes on, every acknowledged change is there")
    func groupCommitConnectionKilled() async throws {
        try await Self.withInstance(tenants: ["t1", "t2"], reps: 4) { url, a, admins in
            let stop = Date().addingTimeInterval(4)
            // One writer per tenant: a call refused while its tenant is reloaded is retried with
            // the same message id (so a write that did commit is answered, not duplicated).
            let acked = try await withThrowingTaskGroup(of: (String, [String]).self) { group in
                for id in ["t1", "t2"] {
                    let token = admins[id]!
                    group.addTask {
                        let client = try a.client(token: token)
                        defer { client.close() }
                        var sessions: [String] = []
                        var n = 0
                        while Date() < stop, n < 80 {
                            n += 1
                            while true {
                                do {
                                    let s = try await customerMessage(client, conversation: "c-\(n)", channel: "web", message: "m-\(n)").session!
                                    sessions.append(s.id)
                                    break
                                } catch let error as RPCError where error.code == .unavailable {
                                    try await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                        return (id, sessions)
                    }
                }
                let observer = try PostgresConnection(configuration: .init(url: url))
                for _ in 0..<8 {
                    try await Task.sleep(for: .milliseconds(300))
                    try observer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%(group commit)'")
                }
                var all: [String: [String]] = [:]
                for try await (id, sessions) in group { all[id] = sessions }
                return all
            }
            #expect(a.process.isRunning)
            for (id, sessions) in acked {
                #expect(sessions.count > 10, "tenant \(id) wrote \(sessions.count) sessions")
                let admin = try a.client(token: admins[id]!)
                defer { admin.close() }
                for session in sessions {
                    var get = SessionsV1.GetSessionRequest()
                    get.sessionId = session
                    let got = try? await admin.sessions.getSession(get)
                    #expect(got?.session?.id == session, "tenant \(id) lost acknowledged session \(session)")
                    var events = SessionsV1.ListEventsRequest()
                    events.sessionId = session
                    let log = try await admin.events.listEvents(events).events
                    #expect(!log.isEmpty && log.map(\.sequence) == Array(1...Int64(log.count)), "tenant \(id) \(session): \(log.map(\.sequence))")
                }
            }
            #expect(a.terminate() == 0)
        }
    }
}
