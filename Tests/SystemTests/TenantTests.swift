import Foundation
import PostgresTestSupport
import RPC
import SessionAPI
import SessionClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Tenants over the wire, with real sessiond processes: an operator creates them, each is a
/// namespace of its own, and no token of one sees or changes anything of another.
@Suite("Tenants: isolation over the wire, on SQLite and PostgreSQL", .serialized)
struct TenantTests {
    static let operatorToken = "sst_operator_for_system_tests_0123456789abcdef"

    enum Store: String, CaseIterable, CustomStringConvertible {
        case sqlite, postgres
        var description: String { rawValue }
    }

    static func arguments(_ store: Store) throws -> [String] {
        var args = ["--operator-token", operatorToken, "--test-clock", "--test-clock-start-ms", "1800000000000"]
        if store == .postgres { args += ["--store", try PostgresTestServer.makeDatabase(), "--partition-lease-ms", "2000"] }
        return args
    }

    /// A tenant's tokens, made through the wire.
    struct TenantTokens {
        let id: String
        let admin: String
        let service: String
        let rep: String
    }

    static func code<T>(_ body: () async throws -> T) async -> RPCStatusCode? {
        do {
            _ = try await body()
            return .ok
        } catch let error as RPCError {
            return error.code
        } catch {
            return nil
        }
    }

    static func issue(_ client: SessionClient, _ role: SessionsV1.Role, name: String, repId: String = "") async throws -> String {
        var r = SessionsV1.IssueTokenRequest()
        r.name = name
        r.role = role
        r.repId = repId
        return try await client.tokens.issueToken(r).token
    }

    /// Creates `id` through the operator and gives it a channel `web`, reps `rep-0` and `rep-1`,
    /// a rep and a service token, and a customer session on conversation `c1`.
    static func makeTenant(_ daemon: DaemonProcess, _ id: String) async throws -> TenantTokens {
        let op = try daemon.client(token: operatorToken)
        defer { op.close() }
        var create = SessionsV1.CreateTenantRequest()
        create.id = id
        create.displayName = "Tenant \(id)"
        let created = try await op.tenants.createTenant(create)
        #expect(created.tenant?.id == id)
        #expect(created.adminToken?.info?.role == .admin)
        #expect(created.adminToken?.info?.tenantId == id)
        let adminSecret = created.adminToken!.token
        let admin = try daemon.client(token: adminSecret)
        defer { admin.close() }
        try await setUpChannelAndReps(admin, reps: 2)
        let tokens = TenantTokens(
            id: id, admin: adminSecret, service: try await issue(admin, .service, name: "\(id)-bridge"),
            rep: try await issue(admin, .rep, name: "\(id)-rep", repId: "rep-0"))
        let service = try daemon.client(token: tokens.service)
        defer { service.close() }
        let session = try await customerMessage(service, conversation: "c1", channel: "web", message: "\(id)-m1").session!
        #expect(session.status == .active)
        return tokens
    }

    /// Everything a tenant holds, as its admin reads it: what must not change when another
    /// tenant's tokens try things.
    static func snapshot(_ daemon: DaemonProcess, _ tokens: TenantTokens) async throws -> String {
        let admin = try daemon.client(token: tokens.admin)
        defer { admin.close() }
        var out = ""
        for s in try await admin.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions {
            out += "session \(s.id) \(s.status) rep=\(s.repId) v=\(s.version)\n"
            var l = SessionsV1.ListEventsRequest()
            l.sessionId = s.id
            for e in try await admin.events.listEvents(l).events { out += "  event \(e.sequence) \(e.cursor) \(e.toStatus)\n" }
        }
        for r in try await admin.reps.listReps(SessionsV1.ListRepsRequest()).reps {
            out += "rep \(r.id) \(r.presence) cap=\(r.capacity) perms=\(r.permissions)\n"
        }
        for c in try await admin.channels.listChannels(SessionsV1.ListChannelsRequest()).channels {
            out += "channel \(c.id) \(c.type) weight=\(c.capacityWeight) timeout=\(c.customerInactivityTimeoutMs)\n"
        }
        for t in try await admin.tokens.listTokens(SessionsV1.ListTokensRequest()).tokens { out += "token \(t.id) \(t.role) revoked=\(t.revoked)\n" }
        out += "head \(try await admin.events.getEventHead(SessionsV1.GetEventHeadRequest()).cursor)\n"
        return out
    }

    @Test("Every RPC tried with tenant A's tokens against tenant B's ids is refused with NOT_FOUND, and nothing of B changes", arguments: Store.allCases)
    func isolation(store: Store) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: try Self.arguments(store))
        try await daemon.withLogOnFailure {
            let a = try await Self.makeTenant(daemon, "acme")
            let b = try await Self.makeTenant(daemon, "globex")
            // Objects that exist only in B (the shared names above exist in both: namespaces).
            let bAdmin = try daemon.client(token: b.admin)
            defer { bAdmin.close() }
            try await setUpChannelAndReps(bAdmin, channel: "globex-only", reps: 0)
            var bRep = SessionsV1.Rep()
            bRep.id = "globex-rep"
            bRep.displayName = "Globex rep"
            bRep.capacity = 5
            bRep.presence = .available
            bRep.permissions = [.enhancedChatUser, .enhancedChatRep]
            var bRepRequest = SessionsV1.RepRequest()
            bRepRequest.rep = bRep
            _ = try await bAdmin.reps.createRep(bRepRequest)
            let bSession = try await openSessions(bAdmin, conversation: "c1")[0]
            let bTokenID = try await bAdmin.tokens.listTokens(SessionsV1.ListTokensRequest()).tokens.first { $0.role == .service }!.id
            let before = try await Self.snapshot(daemon, b)

            let aAdminForSession = try daemon.client(token: a.admin)
            defer { aAdminForSession.close() }
            let aSession = try await openSessions(aAdminForSession, conversation: "c1")[0]
            #expect(aSession.id != bSession.id, "the same conversation in two tenants is two sessions")

            var ghostRep = bRep
            ghostRep.id = "ghost-rep"
            let foreign = Targets(session: bSession.id, rep: bRep, channel: "globex-only", tokenID: bTokenID)
            let ghost = Targets(session: "ses_00000000000000000000000000", rep: ghostRep, channel: "ghost-channel", tokenID: "0123456789ab")
            for (role, secret) in [("admin", a.admin), ("service", a.service), ("rep", a.rep)] {
                let c = try daemon.client(token: secret)
                defer { c.close() }
                let onB = await Self.probe(c, tag: "b-\(role)", foreign)
                let onNothing = await Self.probe(c, tag: "g-\(role)", ghost)
                // No hint that B's objects exist: each answer is the one for an id that exists nowhere.
                for (call, answer) in onB.sorted(by: { $0.key < $1.key }) {
                    #expect(answer == onNothing[call], "\(role) \(call): \(String(describing: answer)) on B's id, \(String(describing: onNothing[call] ?? nil)) on none")
                    #expect(answer == .notFound || answer == .permissionDenied, "\(role) \(call) answered \(String(describing: answer))")
                    if role == "admin" { #expect(answer == .notFound, "admin \(call) answered \(String(describing: answer))") }
                }
                await Self.expectListsOwnOnly(c, bSession: bSession.id)
            }
            // A's admin sees NOT_FOUND for a B rep, exactly like for a rep that exists nowhere.
            let aAdmin = try daemon.client(token: a.admin)
            defer { aAdmin.close() }
            var nowhere = SessionsV1.GetRepRequest(); nowhere.repId = "no-such-rep"
            var bOnly = SessionsV1.GetRepRequest(); bOnly.repId = "globex-rep"
            let missing = await Self.messageOf { try await aAdmin.reps.getRep(nowhere) }
            let foreignMessage = await Self.messageOf { try await aAdmin.reps.getRep(bOnly) }
            #expect(missing?.replacingOccurrences(of: "no-such-rep", with: "X") == foreignMessage?.replacingOccurrences(of: "globex-rep", with: "X"))

            #expect(try await Self.snapshot(daemon, b) == before, "tenant B changed")

            // A's live event feed carries A's events only: B's new session comes first, A's after.
            var fromHead = SessionsV1.WatchEventsRequest()
            fromHead.afterCursor = try await aAdmin.events.getEventHead(SessionsV1.GetEventHeadRequest()).cursor
            let feed = Task { () -> SessionsV1.Event? in
                for try await event in aAdmin.events.watchEvents(fromHead) { return event }
                return nil
            }
            let bService = try daemon.client(token: b.service), aService = try daemon.client(token: a.service)
            defer { bService.close(); aService.close() }
            let bNew = try await customerMessage(bService, conversation: "c2", channel: "web", message: "globex-m2").session!
            let aNew = try await customerMessage(aService, conversation: "c2", channel: "web", message: "acme-m2").session!
            let first = try await feed.value
            #expect(first?.sessionId == aNew.id, "A's feed showed \(String(describing: first?.sessionId)); B's new session is \(bNew.id)")
        }
        #expect(daemon.terminate() == 0)
    }

    /// The ids one probe names: B's objects, or ids that exist in no tenant.
    struct Targets {
        let session: String
        let rep: SessionsV1.Rep
        let channel: String
        let tokenID: String
    }

    /// Every RPC of every service that names an object, tried by `c` (a token of A) on `t`,
    /// with the code each answered (nil: OK or not an RPC error).
    static func probe(_ c: SessionClient, tag: String, _ t: Targets) async -> [String: RPCStatusCode?] {
        var codes: [String: RPCStatusCode?] = [:]
        var get = SessionsV1.GetSessionRequest(); get.sessionId = t.session
        codes["GetSession"] = await code { try await c.sessions.getSession(get) }
        var repMessage = SessionsV1.PostRepMessageRequest(); repMessage.sessionId = t.session; repMessage.messageId = "x-\(tag)"; repMessage.text = "hi"
        codes["PostRepMessage"] = await code { try await c.sessions.postRepMessage(repMessage) }
        var inactive = SessionsV1.MarkInactiveRequest(); inactive.sessionId = t.session
        codes["MarkInactive"] = await code { try await c.sessions.markInactive(inactive) }
        var end = SessionsV1.EndSessionRequest(); end.sessionId = t.session
        codes["EndSession"] = await code { try await c.sessions.endSession(end) }
        var events = SessionsV1.ListEventsRequest(); events.sessionId = t.session
        codes["ListEvents"] = await code { try await c.events.listEvents(events) }
        var watch = SessionsV1.WatchEventsRequest(); watch.sessionId = t.session
        codes["WatchEvents"] = await code { for try await _ in c.events.watchEvents(watch) { break } }
        var customer = SessionsV1.PostCustomerMessageRequest(); customer.conversationId = "c9"; customer.channelId = t.channel; customer.messageId = "m9-\(tag)"; customer.text = "t"
        codes["PostCustomerMessage"] = await code { try await c.sessions.postCustomerMessage(customer) }
        var create = SessionsV1.CreateSessionRequest(); create.conversationId = "c9"; create.channelId = t.channel
        codes["CreateSession"] = await code { try await c.sessions.createSession(create) }
        var business = SessionsV1.StartBusinessInitiatedRequest(); business.repId = t.rep.id; business.conversationId = "c9"; business.channelId = "web"
        codes["StartBusinessInitiated"] = await code { try await c.sessions.startBusinessInitiated(business) }
        await probeReps(c, t, into: &codes)
        var getChannel = SessionsV1.GetChannelRequest(); getChannel.channelId = t.channel
        codes["GetChannel"] = await code { try await c.channels.getChannel(getChannel) }
        var foreignChannel = SessionsV1.Channel(); foreignChannel.id = t.channel; foreignChannel.type = .enhancedWebChatV2; foreignChannel.capacityWeight = 3
        var updateChannel = SessionsV1.ChannelRequest(); updateChannel.channel = foreignChannel
        codes["UpdateChannel"] = await code { try await c.channels.updateChannel(updateChannel) }
        var revokeToken = SessionsV1.RevokeTokenRequest(); revokeToken.id = t.tokenID
        codes["RevokeToken"] = await code { try await c.tokens.revokeToken(revokeToken) }
        var repToken = SessionsV1.IssueTokenRequest(); repToken.name = "sneaky"; repToken.role = .rep; repToken.repId = t.rep.id
        codes["IssueToken"] = await code { try await c.tokens.issueToken(repToken) }
        return codes
    }

    static func probeReps(_ c: SessionClient, _ t: Targets, into codes: inout [String: RPCStatusCode?]) async {
        var getRep = SessionsV1.GetRepRequest(); getRep.repId = t.rep.id
        codes["GetRep"] = await code { try await c.reps.getRep(getRep) }
        codes["GetWorkload"] = await code { try await c.reps.getWorkload(getRep) }
        var presence = SessionsV1.SetPresenceRequest(); presence.repId = t.rep.id; presence.presence = .offline
        codes["SetPresence"] = await code { try await c.reps.setPresence(presence) }
        var changed = t.rep; changed.capacity = 1
        var update = SessionsV1.RepRequest(); update.rep = changed
        codes["UpdateRep"] = await code { try await c.reps.updateRep(update) }
        var grant = SessionsV1.PermissionChangeRequest(); grant.repId = t.rep.id; grant.permission = .messagingAgent
        codes["GrantPermission"] = await code { try await c.permissions.grantPermission(grant) }
        var revokePermission = grant; revokePermission.permission = .enhancedChatRep
        codes["RevokePermission"] = await code { try await c.permissions.revokePermission(revokePermission) }
        var listPermissions = SessionsV1.ListPermissionsRequest(); listPermissions.repId = t.rep.id
        codes["ListPermissions"] = await code { try await c.permissions.listPermissions(listPermissions) }
        var check = SessionsV1.CheckPermissionRequest(); check.repId = t.rep.id; check.channelId = "web"
        codes["CheckPermission"] = await code { try await c.permissions.checkPermission(check) }
    }

    /// A's lists show A's objects only.
    static func expectListsOwnOnly(_ c: SessionClient, bSession: String) async {
        if let sessions = try? await c.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions {
            #expect(!sessions.contains { $0.id == bSession }, "ListSessions leaked B's session")
        }
        if let reps = try? await c.reps.listReps(SessionsV1.ListRepsRequest()).reps {
            #expect(!reps.contains { $0.id == "globex-rep" }, "ListReps leaked B's rep")
        }
        if let channels = try? await c.channels.listChannels(SessionsV1.ListChannelsRequest()).channels {
            #expect(!channels.contains { $0.id == "globex-only" }, "ListChannels leaked B's channel")
        }
        if let tokens = try? await c.tokens.listTokens(SessionsV1.ListTokensRequest()).tokens {
            #expect(tokens.allSatisfy { $0.tenantId == "acme" }, "ListTokens leaked another tenant's token")
        }
    }

    static func messageOf<T>(_ body: () async throws -> T) async -> String? {
        do { _ = try await body(); return nil } catch let error as RPCError { return error.message } catch { return "\(error)" }
    }

    @Test("Only an operator manages tenants; an operator token acts in no tenant; ids are checked", arguments: Store.allCases)
    func operatorRole(store: Store) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let daemon = try DaemonProcess.start(dataDirectory: dir, arguments: try Self.arguments(store))
        try await daemon.withLogOnFailure {
            let admin = try daemon.client()  // the default tenant's bootstrap admin
            defer { admin.close() }
            let op = try daemon.client(token: Self.operatorToken)
            defer { op.close() }
            var create = SessionsV1.CreateTenantRequest()
            create.id = "initech"
            #expect(await Self.code { try await admin.tenants.createTenant(create) } == .permissionDenied)
            #expect(await Self.code { try await admin.tenants.listTenants(SessionsV1.ListTenantsRequest()) } == .permissionDenied)
            #expect(await Self.code { try await op.channels.listChannels(SessionsV1.ListChannelsRequest()) } == .permissionDenied)
            #expect(await Self.code { try await op.sessions.listSessions(SessionsV1.ListSessionsRequest()) } == .permissionDenied)
            for bad in ["", "Upper", "under_score", "-lead", String(repeating: "a", count: 41), "sp ace"] {
                var r = SessionsV1.CreateTenantRequest()
                r.id = bad
                #expect(await Self.code { try await op.tenants.createTenant(r) } == .invalidArgument, "id '\(bad)'")
            }
            _ = try await op.tenants.createTenant(create)
            #expect(await Self.code { try await op.tenants.createTenant(create) } == .alreadyExists)
            var defaultAgain = SessionsV1.CreateTenantRequest()
            defaultAgain.id = "default"
            #expect(await Self.code { try await op.tenants.createTenant(defaultAgain) } == .alreadyExists)
            let tenants = try await op.tenants.listTenants(SessionsV1.ListTenantsRequest()).tenants.map(\.id)
            #expect(tenants == ["default", "initech"])
            // The default tenant is the README's: the bootstrap admin works in it as before.
            #expect(try await admin.tokens.whoAmI(SessionsV1.WhoAmIRequest()).tenantId == "default")
            // An admin issues no operator token; an operator issues operator tokens only.
            var opToken = SessionsV1.IssueTokenRequest(); opToken.name = "op2"; opToken.role = .operator
            #expect(await Self.code { try await admin.tokens.issueToken(opToken) } == .permissionDenied)
            let op2 = try await op.tokens.issueToken(opToken)
            #expect(op2.info?.role == .operator && op2.info?.tenantId == "")
            var serviceToken = SessionsV1.IssueTokenRequest(); serviceToken.name = "svc"; serviceToken.role = .service
            #expect(await Self.code { try await op.tokens.issueToken(serviceToken) } == .permissionDenied)
            var again = SessionsV1.IssueTenantAdminTokenRequest(); again.tenantId = "initech"
            let second = try await op.tenants.issueTenantAdminToken(again)
            let initech = try daemon.client(token: second.token)
            defer { initech.close() }
            #expect(try await initech.tokens.whoAmI(SessionsV1.WhoAmIRequest()).tenantId == "initech")
            again.tenantId = "nope"
            #expect(await Self.code { try await op.tenants.issueTenantAdminToken(again) } == .notFound)
        }
        #expect(daemon.terminate() == 0)
    }

    @Test("A disabled tenant's tokens are refused and its timers wait; enabled again, its data is back and overdue timers fire; tenants survive a restart", arguments: Store.allCases)
    func disableEnableRestart(store: Store) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let arguments = try Self.arguments(store)
        var daemon = try DaemonProcess.start(dataDirectory: dir, arguments: arguments)
        let a: TenantTokens
        let b: TenantTokens
        let beforeB: String
        do {
            (a, b, beforeB) = try await daemon.withLogOnFailure {
                let a = try await Self.makeTenant(daemon, "acme")
                let b = try await Self.makeTenant(daemon, "globex")
                let op = try daemon.client(token: Self.operatorToken)
                defer { op.close() }
                let bAdmin = try daemon.client(token: b.admin)
                defer { bAdmin.close() }
                // B's session goes INACTIVE: it auto-ends 24 h later, unless B is disabled then.
                let bSession = try await openSessions(bAdmin, conversation: "c1")[0]
                var inactive = SessionsV1.MarkInactiveRequest(); inactive.sessionId = bSession.id
                _ = try await bAdmin.sessions.markInactive(inactive)
                let before = try await Self.snapshot(daemon, b)
                var r = SessionsV1.TenantRequest(); r.id = "globex"
                #expect(try await op.tenants.disableTenant(r).disabled)
                #expect(await Self.code { try await bAdmin.sessions.listSessions(SessionsV1.ListSessionsRequest()) } == .permissionDenied)
                #expect(await Self.code { try await bAdmin.tokens.whoAmI(SessionsV1.WhoAmIRequest()) } == .permissionDenied)
                // The other tenant is untouched.
                let aAdmin = try daemon.client(token: a.admin)
                defer { aAdmin.close() }
                #expect(try await aAdmin.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions.count == 1)
                var advance = SessionsV1.AdvanceClockRequest(); advance.byMs = 25 * 3_600_000
                _ = try await op.clock.advanceClock(advance)
                #expect(try await op.tenants.enableTenant(r).disabled == false)
                // Enabled again: B's data is as it was, and its overdue auto-end fires at once.
                var get = SessionsV1.GetSessionRequest(); get.sessionId = bSession.id
                let ended = await waitUntil(seconds: 10) {
                    (try? await bAdmin.sessions.getSession(get).session?.status) == .ended
                }
                #expect(ended, "B's overdue auto-end did not fire after it was enabled")
                var events = SessionsV1.ListEventsRequest(); events.sessionId = bSession.id
                let log = try await bAdmin.events.listEvents(events).events
                #expect(log.map(\.sequence) == Array(1...Int64(log.count)), "B's log is gapless")
                #expect(log.filter { $0.toStatus == .ended }.count == 1, "the auto-end fired once")
                // Everything else of B (reps, channels, tokens) is as before it was disabled.
                let after = try await Self.snapshot(daemon, b)
                let unchanging = { (s: String) in s.split(separator: "\n").filter { $0.hasPrefix("rep ") || $0.hasPrefix("channel ") || $0.hasPrefix("token ") } }
                #expect(unchanging(after) == unchanging(before) && !unchanging(before).isEmpty)
                return (a, b, after)
            }
        }
        #expect(daemon.terminate() == 0)
        if store == .sqlite {
            // Each tenant's data lives in a directory of its own, owner-only like the main one.
            let tenantDir = dir + "/tenants/globex"
            var st = stat()
            #expect(stat(tenantDir, &st) == 0 && st.st_mode & 0o777 == 0o700)
            #expect(stat(tenantDir + "/sessions.sqlite", &st) == 0 && st.st_mode & 0o777 == 0o600)
        }
        daemon = try DaemonProcess.start(dataDirectory: dir, arguments: arguments)
        try await daemon.withLogOnFailure {
            #expect(try await Self.snapshot(daemon, b) == beforeB, "tenant B after the restart")
            let aAdmin = try daemon.client(token: a.admin)
            defer { aAdmin.close() }
            #expect(try await aAdmin.sessions.listSessions(SessionsV1.ListSessionsRequest()).sessions.count == 1)
            let op = try daemon.client(token: Self.operatorToken)
            defer { op.close() }
            #expect(try await op.tenants.listTenants(SessionsV1.ListTenantsRequest()).tenants.map(\.id) == ["acme", "default", "globex"])
        }
        #expect(daemon.terminate() == 0)
    }
}
