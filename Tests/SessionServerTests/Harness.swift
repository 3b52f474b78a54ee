import Dispatch
import Foundation
import RPC
import SessionAPI
import SessionClient
import SessionServer
import Synchronization
import Testing

// End-to-end scenario harness: a real `SessionDaemon` in-process on
// 127.0.0.1 (port 0), with its own temporary data directory, a pinned test
// clock, and typed clients talking to it over TCP exactly as other backend
// services do.

typealias Channel = SessionsV1.Channel
typealias ChannelType = SessionsV1.ChannelType
typealias Session = SessionsV1.Session
typealias Status = SessionsV1.SessionStatus
typealias Reason = SessionsV1.TransitionReason
typealias Permission = SessionsV1.Permission
typealias Presence = SessionsV1.Presence
typealias Rep = SessionsV1.Rep
typealias Event = SessionsV1.Event

enum Millis {
    static let second: Int64 = 1_000
    static let minute: Int64 = 60 * second
    static let hour: Int64 = 60 * minute
    static let day: Int64 = 24 * hour
}

/// Channel types by family, as SPEC §2 lists them.
enum ChannelTypes {
    static let enhancedChat: [ChannelType] = [.enhancedInAppChat, .enhancedWebChatV1, .enhancedWebChatV2]
    static let enhancedMessaging: [ChannelType] = [
        .enhancedWhatsapp, .enhancedFacebookMessenger, .enhancedSms, .enhancedAppleMessagesForBusiness, .enhancedLine,
    ]
    static let standard: [ChannelType] = [.standardFacebookMessenger, .standardSms]
    /// Every type the source document says "applies".
    static let inactivatable: [ChannelType] = enhancedChat + enhancedMessaging + [.bringYourOwnChannel]
    static let all: [ChannelType] = inactivatable + standard
}

/// Every permission a rep can hold (enough for every channel).
let allPermissions: [Permission] = [.enhancedChatUser, .enhancedChatRep, .messagingAgent]

/// A running daemon and the admin client that configures it.
final class TestDaemon: Sendable {
    static let adminSecret = "admin-secret"
    static let clockStart: Int64 = 1_800_000_000_000

    let daemon: SessionDaemon
    let directory: String
    /// A client authenticated with the bootstrap admin token.
    let admin: SessionClient
    private let clients = Mutex<[SessionClient]>([])
    private let counter = Mutex<Int>(0)
    private let defaultService = Mutex<SessionClient?>(nil)

    var port: Int { daemon.server.port }
    var address: String { "127.0.0.1:\(port)" }

    /// The daemon's own logger, quietened: tests provoke refusals on purpose.
    private static let quietLogger = {
        var logger = RPCServer(configuration: .init(), services: []).logger
        logger.logLevel = .error
        return logger
    }()

    /// Starts a daemon on `directory` (a fresh temporary one when nil).
    init(
        directory: String? = nil, testClock: Bool = true, clockStart: Int64 = TestDaemon.clockStart,
        synchronousCommits: Bool = true
    ) throws {
        self.directory = directory ?? Self.makeTemporaryDirectory()
        var o = SessionDaemon.Options()
        o.server.host = "127.0.0.1"
        o.server.port = 0
        o.server.shutdownGraceSeconds = 2
        o.dataDirectory = self.directory
        o.testClock = testClock
        o.bootstrapAdminToken = Self.adminSecret
        o.sweepIntervalMillis = 50
        o.fixedClockStart = clockStart
        o.synchronousCommits = synchronousCommits
        o.hostTestService = false
        daemon = try SessionDaemon(options: o, logger: Self.quietLogger)
        try daemon.start()
        admin = try SessionClient(address: "127.0.0.1:\(daemon.server.port)", token: Self.adminSecret)
        clients.withLock { $0.append(admin) }
    }

    static func makeTemporaryDirectory() -> String {
        var template = Array((NSTemporaryDirectory() + "/session-scenario-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A new connection with `token` (none: no authorization metadata).
    func client(token: String?) throws -> SessionClient {
        let c = try SessionClient(address: address, token: token)
        clients.withLock { $0.append(c) }
        return c
    }

    /// Closes every client, then shuts the daemon down gracefully (bounded).
    func stop(removingDirectory: Bool = true) async {
        for c in clients.withLock({ $0 }) { c.close() }
        let daemon = self.daemon
        do {
            try await deadline(15) { await daemon.shutdown() }
        } catch {
            Issue.record("daemon did not shut down within 15 s")
        }
        if removingDirectory { Self.removeDirectory(directory) }
    }

    /// A unique suffix for message ids and names.
    func unique(_ prefix: String) -> String {
        let n = counter.withLock { $0 += 1; return $0 }
        return "\(prefix)-\(n)"
    }

    // MARK: Tokens

    func issueToken(_ role: SessionsV1.Role, repId: String = "", name: String? = nil) async throws -> String {
        var r = SessionsV1.IssueTokenRequest()
        r.name = name ?? unique(role.protoName.lowercased())
        r.role = role
        r.repId = repId
        return try await admin.tokens.issueToken(r).token
    }

    /// A connection authenticated as the rep `repId`.
    func repClient(_ repId: String) async throws -> SessionClient {
        try client(token: try await issueToken(.rep, repId: repId, name: "token-\(repId)"))
    }

    /// A connection authenticated as a channel integration (service role).
    func serviceClient(name: String = "web-integration") async throws -> SessionClient {
        try client(token: try await issueToken(.service, name: name))
    }

    /// The channel integration that posts customer messages by default.
    func service() async throws -> SessionClient {
        if let existing = defaultService.withLock({ $0 }) { return existing }
        let created = try await serviceClient(name: "channel-integration")
        return defaultService.withLock { current in
            if let current { return current }
            current = created
            return created
        }
    }

    // MARK: Configuration (admin)

    @discardableResult
    func createChannel(
        _ id: String, _ type: ChannelType, model: SessionsV1.CapacityModel = .tabBased, weight: Int32 = 0,
        inactivityTimeoutMs: Int64 = 0, autoEndAfterMs: Int64 = 0, hidden: Bool = false
    ) async throws -> Channel {
        var c = Channel()
        c.id = id
        c.type = type
        c.capacityModel = model
        c.capacityWeight = weight
        c.customerInactivityTimeoutMs = inactivityTimeoutMs
        c.inactiveAutoEndAfterMs = autoEndAfterMs
        c.inactivateActionHidden = hidden
        var r = SessionsV1.ChannelRequest()
        r.channel = c
        return try #require(try await admin.channels.createChannel(r).channel)
    }

    @discardableResult
    func createRep(
        _ id: String, capacity: Int32 = 1, permissions: [Permission] = allPermissions, presence: Presence = .available
    ) async throws -> Rep {
        var rep = Rep()
        rep.id = id
        rep.displayName = "Rep \(id)"
        rep.capacity = capacity
        rep.permissions = permissions
        rep.presence = presence
        var r = SessionsV1.RepRequest()
        r.rep = rep
        return try #require(try await admin.reps.createRep(r).rep)
    }

    @discardableResult
    func setPresence(_ repId: String, _ presence: Presence, via client: SessionClient? = nil) async throws -> Rep {
        var r = SessionsV1.SetPresenceRequest()
        r.repId = repId
        r.presence = presence
        return try #require(try await (client ?? admin).reps.setPresence(r).rep)
    }

    func grant(_ permission: Permission, to repId: String) async throws {
        var r = SessionsV1.PermissionChangeRequest()
        r.repId = repId
        r.permission = permission
        _ = try await admin.permissions.grantPermission(r)
    }

    func revoke(_ permission: Permission, from repId: String) async throws {
        var r = SessionsV1.PermissionChangeRequest()
        r.repId = repId
        r.permission = permission
        _ = try await admin.permissions.revokePermission(r)
    }

    // MARK: Sessions

    /// The customer writes on `conversation` (through `client`, admin by default).
    @discardableResult
    func customerWrites(
        _ conversation: String, on channelId: String, messageId: String? = nil, text: String = "hello",
        via client: SessionClient? = nil
    ) async throws -> Session {
        var r = SessionsV1.PostCustomerMessageRequest()
        r.conversationId = conversation
        r.channelId = channelId
        r.messageId = messageId ?? unique("cm-\(conversation)")
        r.text = text
        var via = client
        if via == nil { via = try await service() }
        let caller = try #require(via)
        return try #require(try await caller.sessions.postCustomerMessage(r).session)
    }

    /// The rep writes on the session (through the rep's own client).
    @discardableResult
    func repWrites(_ sessionId: String, via client: SessionClient, text: String = "how can I help?") async throws -> Session {
        var r = SessionsV1.PostRepMessageRequest()
        r.sessionId = sessionId
        r.messageId = unique("rm-\(sessionId)")
        r.text = text
        return try #require(try await client.sessions.postRepMessage(r).session)
    }

    @discardableResult
    func markInactive(_ sessionId: String, via client: SessionClient) async throws -> Session {
        var r = SessionsV1.MarkInactiveRequest()
        r.sessionId = sessionId
        return try #require(try await client.sessions.markInactive(r).session)
    }

    @discardableResult
    func end(_ sessionId: String, via client: SessionClient? = nil) async throws -> Session {
        var r = SessionsV1.EndSessionRequest()
        r.sessionId = sessionId
        return try #require(try await (client ?? admin).sessions.endSession(r).session)
    }

    func session(_ id: String, via client: SessionClient? = nil) async throws -> Session {
        var r = SessionsV1.GetSessionRequest()
        r.sessionId = id
        return try #require(try await (client ?? admin).sessions.getSession(r).session)
    }

    func events(_ sessionId: String, via client: SessionClient? = nil) async throws -> [Event] {
        var r = SessionsV1.ListEventsRequest()
        r.sessionId = sessionId
        r.limit = 1000
        return try await (client ?? admin).events.listEvents(r).events
    }

    func workload(_ repId: String, via client: SessionClient? = nil) async throws -> SessionsV1.WorkloadResponse {
        var r = SessionsV1.GetRepRequest()
        r.repId = repId
        return try await (client ?? admin).reps.getWorkload(r)
    }

    func sessions(
        status: Status = .unspecified, repId: String = "", conversationId: String = "", via client: SessionClient? = nil
    ) async throws -> [Session] {
        var all: [Session] = []
        var token = ""
        repeat {
            var r = SessionsV1.ListSessionsRequest()
            r.status = status
            r.repId = repId
            r.conversationId = conversationId
            r.pageSize = 1000
            r.pageToken = token
            let page = try await (client ?? admin).sessions.listSessions(r)
            all += page.sessions
            token = page.nextPageToken
        } while !token.isEmpty
        return all
    }

    // MARK: Clock

    /// Moves the server clock forward; due timers fire before it returns.
    @discardableResult
    func advance(_ ms: Int64) async throws -> Int64 {
        var r = SessionsV1.AdvanceClockRequest()
        r.byMs = ms
        return try await admin.clock.advanceClock(r).nowMs
    }

    func now() async throws -> Int64 {
        try await admin.clock.getTime().nowMs
    }
}

/// Starts a daemon, runs `body` with it, and always stops it.
func withDaemon(
    testClock: Bool = true, synchronousCommits: Bool = true, _ body: (TestDaemon) async throws -> Void
) async throws {
    let d = try TestDaemon(testClock: testClock, synchronousCommits: synchronousCommits)
    do {
        try await body(d)
    } catch {
        await d.stop()
        throw error
    }
    await d.stop()
}

/// A value shared between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

// MARK: Expectations

/// Expects `body` to fail with `code`, its message containing every fragment.
@discardableResult
func expectRPCError<T>(
    _ code: RPCStatusCode, containing fragments: [String] = [], _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> RPCError? {
    do {
        let value = try await body()
        Issue.record("expected \(code.name) but the call succeeded: \(value) \(comment.map { "(\($0))" } ?? "")", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "expected \(code.name), got \(error) \(comment.map { "(\($0))" } ?? "")", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.message.contains(fragment), "message '\(error.message)' should name '\(fragment)'", sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected RPCError \(code.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
    while true {
        if try await condition() { return true }
        if DispatchTime.now().uptimeNanoseconds > end { return false }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "did not finish within \(seconds) s" }
}

/// Runs `operation`, throwing `DeadlineExceeded` if it has not finished within
/// `seconds`. The operation is then cancelled but not awaited (it may be stuck
/// where cancellation cannot reach), so the limit really bounds the wait.
func deadline<T: Sendable>(_ seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let state = Locked<(done: Bool, waiter: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?)>((false, nil, nil))
    @Sendable func deliver(_ result: Result<T, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<T, any Error>? in
            if s.done { return nil }
            s.done = true
            if let w = s.waiter { return w }
            s.early = result
            return nil
        }
        waiter?.resume(with: result)
    }
    let task = Task {
        do { deliver(.success(try await operation())) } catch { deliver(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        deliver(.failure(DeadlineExceeded(seconds: seconds)))
        task.cancel()
    }
    defer { timer.cancel() }
    return try await withCheckedThrowingContinuation { continuation in
        let early = state.withLock { s -> Result<T, any Error>? in
            if let e = s.early { return e }
            s.waiter = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }
}

/// Checks the per-session event invariants: sequences 1...n without gaps, each
/// event starting where the previous one ended, cursors strictly increasing.
func expectConsistentHistory(_ events: [Event], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!events.isEmpty, "a session has at least its creation event", sourceLocation: sourceLocation)
    for (i, e) in events.enumerated() {
        #expect(e.sequence == Int64(i + 1), "sequence \(e.sequence) at position \(i + 1)", sourceLocation: sourceLocation)
        if i == 0 {
            #expect(e.fromStatus == .unspecified, "the first event creates the session", sourceLocation: sourceLocation)
        } else {
            #expect(e.fromStatus == events[i - 1].toStatus,
                    "event \(e.sequence) starts from \(e.fromStatus.protoName) but the previous ended in \(events[i - 1].toStatus.protoName)",
                    sourceLocation: sourceLocation)
            #expect(e.cursor > events[i - 1].cursor, sourceLocation: sourceLocation)
            #expect(e.timeMs >= events[i - 1].timeMs, sourceLocation: sourceLocation)
        }
    }
}

/// The (from, to, reason) triples of a history, for compact comparisons.
func transitions(_ events: [Event]) -> [String] {
    events.map { "\($0.fromStatus.protoName)->\($0.toStatus.protoName):\($0.reason.protoName)" }
}
