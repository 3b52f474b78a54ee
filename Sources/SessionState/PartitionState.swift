public import SessionCore
public import SessionStorage

/// One partition's state in memory, indexed for every query the engine makes, as a
/// `SessionRepository`. Only its owner (``PartitionOwner``) touches it, from one thread at a time.
///
/// Memory holds every channel, rep and open session, the routing queue, the timers, each open
/// session's last event sequence and the global cursor. What grows without bound stays in the store
/// and is read through the journal: ended sessions (kept in memory until their end is durable),
/// events, and message bodies (a fingerprint of every message key is in memory, so a new message
/// id is known new without a read).
///
/// Each command runs between ``begin()`` and ``commit()``/``rollback()``: every mutation records
/// the rows it changed (for the journal) and how to undo it (a command that throws leaves nothing,
/// and a batch that fails to become durable is undone command by command).
public final class PartitionState: SessionRepository {
    private let journal: any PartitionJournal

    private var channelsByID: [String: Channel] = [:]
    private var repsByID: [String: Rep] = [:]
    /// The available reps, ordered by id, as routing sees them (kept in step with `repsByID`).
    private var available: [RouteEntry] = []
    private var sessionsByID: [String: Session] = [:]
    private var openByConversation: [String: String] = [:]
    /// `WAITING` sessions in queue order.
    private var queue: [QueuePosition] = []
    private var byRepStatus: [RepStatus: Set<String>] = [:]
    private var timers = DeadlineHeap()
    private var liveDeadlines = 0
    private var lastSequence: [String: Int64] = [:]
    public private(set) var headCursor: Int64 = 0
    private var settings: [String: Int64] = [:]
    private var fingerprints: Set<UInt64> = []
    /// Messages not yet durable (the store answers for the others).
    private var pendingMessages: [MessageKey: Message] = [:]
    /// Events whose batch the store's tables do not hold yet, in cursor order.
    private var pendingEvents: [Event] = []
    /// How many of `pendingEvents`' first entries are settled (dropped in bulk, not one shift per settle).
    private var settledEvents = 0
    /// Sessions changed by a command whose batch the store's tables do not hold yet: id → the version last written.
    private var pendingVersions: [String: Int64] = [:]

    // The command being run.
    private var changes: [Change] = []
    private var undo: [Undo] = []
    private var inCommand = false
    private var readOnly = false

    private struct RepStatus: Hashable {
        var repId: String
        var status: SessionStatus
    }

    private struct MessageKey: Hashable {
        var channelId: String
        var messageId: String
    }

    /// A row a command changed.
    public enum Change: Sendable {
        case channel(Channel)
        case rep(Rep)
        case session(Session)
        case event(Event)
        case message(Message)
        case setting(String, Int64)
    }

    /// How to take one mutation back.
    public enum Undo: Sendable {
        case channel(String, Channel?)
        case rep(String, Rep?)
        case session(String, Session?, pendingVersion: Int64?)
        case event(sessionId: String, lastSequence: Int64?, head: Int64)
        case message(channelId: String, messageId: String)
        case setting(String, Int64?)
    }

    /// What one command did: the rows for the journal, and its undo log (newest last).
    public struct CommandRecord: Sendable {
        public var changes: [Change]
        public var undo: [Undo]
    }

    public init(snapshot: PartitionSnapshot, journal: any PartitionJournal) {
        self.journal = journal
        for channel in snapshot.channels { channelsByID[channel.id] = channel }
        for rep in snapshot.reps { putRep(rep) }
        // A million sessions at a restart: size the tables once and build the timer heap in one
        // pass, instead of growing (and rehashing) them and sifting a million pushes.
        sessionsByID.reserveCapacity(snapshot.openSessions.count)
        openByConversation.reserveCapacity(snapshot.openSessions.count)
        var deadlines: [(deadline: Timestamp, sessionId: String)] = []
        for session in snapshot.openSessions {
            putSession(session, replacing: nil, armTimer: false)
            if let deadline = session.nextDeadline { deadlines.append((deadline, session.id)) }
        }
        timers = DeadlineHeap(unordered: deadlines)
        settings = snapshot.settings
        headCursor = snapshot.headCursor
        fingerprints = Set(snapshot.messageFingerprints)
    }

    // MARK: Commands

    /// Starts recording a command; a read-only one refuses every change.
    public func begin(readOnly: Bool = false) {
        precondition(!inCommand, "a command is already running on this partition")
        inCommand = true
        self.readOnly = readOnly
        changes = []
        undo = []
        // The record is handed over at commit, so the arrays cannot be reused; one allocation of
        // room for a routed customer message's changes, instead of growing 1, 2, 4, 8.
        if !readOnly {
            changes.reserveCapacity(Self.changesPerCommand)
            undo.reserveCapacity(Self.changesPerCommand)
        }
    }

    static let changesPerCommand = 8

    /// Ends the command and hands over what it recorded.
    public func commit() -> CommandRecord {
        precondition(inCommand, "no command is running")
        inCommand = false
        defer { changes = []; undo = [] }
        return CommandRecord(changes: changes, undo: undo)
    }

    /// Ends the command, taking back everything it changed.
    public func rollback() {
        precondition(inCommand, "no command is running")
        inCommand = false
        let log = undo
        changes = []
        undo = []
        revert(log)
    }

    /// A point inside the running command to roll back to (`rollback(to:)`), so that one command
    /// can apply many independent steps and drop only a step that threw.
    public func savepoint() -> Int {
        precondition(inCommand, "no command is running")
        return undo.count
    }

    /// Takes back everything the running command changed after `savepoint`.
    public func rollback(to savepoint: Int) {
        precondition(inCommand && savepoint <= undo.count, "not a savepoint of the running command")
        let log = Array(undo[savepoint...])
        undo.removeSubrange(savepoint...)
        changes.removeSubrange(savepoint...)
        revert(log)
    }

    /// Takes back a committed command (its batch failed to become durable). Commands must be
    /// reverted newest first.
    public func revert(_ record: CommandRecord) {
        revert(record.undo)
    }

    private func revert(_ log: [Undo]) {
        for entry in log.reversed() {
            switch entry {
            case let .channel(id, old):
                channelsByID[id] = old
            case let .rep(id, old):
                if let old { putRep(old) } else if repsByID.removeValue(forKey: id) != nil { setRouteEntry(id, nil) }
            case let .session(id, old, pendingVersion):
                let current = sessionsByID[id]
                if let old {
                    putSession(old, replacing: current)
                } else if let current {
                    unindex(current)
                    sessionsByID[id] = nil
                    lastSequence[id] = nil
                }
                pendingVersions[id] = pendingVersion
            case let .event(sessionId, previous, head):
                lastSequence[sessionId] = previous
                headCursor = head
                while pendingEvents.count > settledEvents, let last = pendingEvents.last, last.cursor > head { pendingEvents.removeLast() }
            case let .message(channelId, messageId):
                // The fingerprint stays: a false match only costs a store read.
                pendingMessages[MessageKey(channelId: channelId, messageId: messageId)] = nil
            case let .setting(key, old):
                settings[key] = old
            }
        }
    }

    /// The store's tables hold `batch` now: what it wrote no longer needs memory's overlay, and
    /// sessions it ended leave memory (the store answers for them from now on).
    public func settle(_ batch: JournalBatch) {
        if let newest = batch.events.last?.cursor {
            var k = settledEvents
            while k < pendingEvents.count, pendingEvents[k].cursor <= newest { k += 1 }
            settledEvents = k
            if settledEvents * 2 >= pendingEvents.count {
                pendingEvents.removeFirst(settledEvents)
                settledEvents = 0
            }
        }
        for session in batch.sessions where pendingVersions[session.id] == session.version {
            pendingVersions[session.id] = nil
            if let current = sessionsByID[session.id], current.status == .ended, current.version == session.version {
                unindex(current)
                sessionsByID[session.id] = nil
                lastSequence[session.id] = nil
            }
        }
        for message in batch.messages {
            pendingMessages[MessageKey(channelId: message.channelId, messageId: message.messageId)] = nil
        }
    }

    // MARK: Timers

    /// The earliest deadline in memory (possibly of a session that no longer has it), or nil.
    public var nextDeadline: Timestamp? { timers.peek?.deadline }

    /// A session taken from the heap to be fired, with its version then.
    public struct DueSession: Sendable {
        public let id: String
        public let version: Int64
    }

    /// Removes and returns the sessions with a deadline `<= now`, earliest first (each once).
    public func takeDue(at now: Timestamp, limit: Int) -> [DueSession] {
        var due: [DueSession] = []
        var seen: Set<String> = []
        while due.count < limit, let top = timers.peek, top.deadline <= now {
            timers.pop()
            guard let version = sessionsByID[top.sessionId].flatMap({ $0.nextDeadline == top.deadline ? $0.version : nil }),
                  seen.insert(top.sessionId).inserted else { continue }
            due.append(DueSession(id: top.sessionId, version: version))
        }
        compactTimersIfSparse()
        return due
    }

    /// After a fire: puts the session back in the heap if it is still due at `now` (its fire
    /// threw, or left it due); true when the fire changed nothing and left it due (a failure).
    /// One lookup.
    @discardableResult
    public func rearmIfDue(_ fired: DueSession, at now: Timestamp) -> Bool {
        guard let session = sessionsByID[fired.id], let deadline = session.nextDeadline, deadline <= now else { return false }
        timers.push(deadline, fired.id)
        return session.version == fired.version
    }

    /// Whether any session in memory has a deadline `<= now` (stale heap entries are dropped).
    public func hasDue(at now: Timestamp) -> Bool {
        while let top = timers.peek, top.deadline <= now {
            if sessionsByID[top.sessionId]?.nextDeadline == top.deadline { return true }
            timers.pop()
        }
        return false
    }

    private func compactTimersIfSparse() {
        guard timers.count > 1024, timers.count > 4 * liveDeadlines else { return }
        var rebuilt = DeadlineHeap()
        for session in sessionsByID.values { if let deadline = session.nextDeadline { rebuilt.push(deadline, session.id) } }
        timers = rebuilt
    }

    /// Open sessions in memory (for tests and metrics).
    public var sessionCount: Int { sessionsByID.count }

    /// What an operator watches (GET /metrics): counted from memory, O(sessions + reps).
    public struct Gauges: Sendable {
        public var sessionsByStatus: [SessionStatus: Int] = [:]
        public var waiting = 0
        /// When the session at the head of the WAITING queue was queued.
        public var oldestQueuedAt: Timestamp?
        public var repsByPresence: [Presence: Int] = [:]
        public var capacityUsed = 0
        public var capacityTotal = 0
        public var pendingTimers = 0
    }

    public func gauges() -> Gauges {
        var g = Gauges()
        for session in sessionsByID.values where session.status.isOpen { g.sessionsByStatus[session.status, default: 0] += 1 }
        g.waiting = queue.count
        g.oldestQueuedAt = queue.first?.queuedAt
        for rep in repsByID.values {
            g.repsByPresence[rep.presence, default: 0] += 1
            g.capacityUsed += rep.usedCapacity
            g.capacityTotal += rep.capacity
        }
        g.pendingTimers = liveDeadlines
        return g
    }

    // MARK: Indexes

    private func putRep(_ rep: Rep) {
        let old = repsByID.updateValue(rep, forKey: rep.id)
        let was = old?.presence == .available
        let isNow = rep.presence == .available
        if was || isNow { setRouteEntry(rep.id, isNow ? RouteEntry(rep) : nil) }
    }

    /// Puts, replaces or (nil) removes rep `id`'s entry in `available`, keeping it ordered by id.
    private func setRouteEntry(_ id: String, _ entry: RouteEntry?) {
        let i = lowerBound(available) { $0.id < id }
        let present = i < available.count && available[i].id == id
        switch (entry, present) {
        case (let entry?, true): available[i] = entry
        case (let entry?, false): available.insert(entry, at: i)
        case (nil, true): available.remove(at: i)
        case (nil, false): break
        }
    }

    /// Stores `session` and indexes it, replacing `old` (the same session's previous state):
    /// only the indexes whose keys changed are touched, each hash table once.
    private func putSession(_ session: Session, replacing old: Session?, armTimer: Bool = true) {
        let sameConversation = old.map { $0.status.isOpen && session.status.isOpen && $0.conversationId == session.conversationId } ?? false
        let sameRepStatus = old.map { $0.repId == session.repId && $0.status == session.status } ?? false
        if let old { unindex(old, keepConversation: sameConversation, keepRepStatus: sameRepStatus) }
        sessionsByID[session.id] = session
        if session.status.isOpen, !sameConversation { openByConversation[session.conversationId] = session.id }
        if session.status == .waiting {
            let key = Self.queueKey(session)
            queue.insert(key, at: lowerBound(queue, key))
        }
        if let repId = session.repId, !sameRepStatus {
            byRepStatus[RepStatus(repId: repId, status: session.status), default: []].insert(session.id)
        }
        if let deadline = session.nextDeadline {
            liveDeadlines += 1
            if armTimer, old?.nextDeadline != deadline { timers.push(deadline, session.id) }
        }
    }

    private func unindex(_ session: Session, keepConversation: Bool = false, keepRepStatus: Bool = false) {
        if session.status.isOpen, !keepConversation, let i = openByConversation.index(forKey: session.conversationId),
           openByConversation.values[i] == session.id {
            openByConversation.remove(at: i)
        }
        if session.status == .waiting {
            let key = Self.queueKey(session)
            let i = lowerBound(queue, key)
            if i < queue.count, queue[i] == key { queue.remove(at: i) }
        }
        if let repId = session.repId, !keepRepStatus, let i = byRepStatus.index(forKey: RepStatus(repId: repId, status: session.status)) {
            byRepStatus.values[i].remove(session.id)
            if byRepStatus.values[i].isEmpty { byRepStatus.remove(at: i) }
        }
        if session.nextDeadline != nil { liveDeadlines -= 1 }
    }

    private static func queueKey(_ session: Session) -> QueuePosition {
        QueuePosition(queuedAt: session.queuedAt ?? session.updatedAt, sessionId: session.id)
    }

    private func record(_ change: Change, _ undoEntry: Undo, _ operation: String) throws {
        try checkWritable(operation)
        changes.append(change)
        undo.append(undoEntry)
    }

    private func checkWritable(_ operation: String) throws {
        precondition(inCommand, "a partition is changed only inside a command")
        if readOnly { throw PartitionStateError.writeInRead(operation) }
    }

    private func recordSession(_ session: Session, old: Session?, _ operation: String) throws {
        try checkWritable(operation)
        let pendingVersion = pendingVersions.updateValue(session.version, forKey: session.id)
        changes.append(.session(session))
        undo.append(.session(session.id, old, pendingVersion: pendingVersion))
    }

    // MARK: SessionRepository — channels

    public func channel(id: String) throws -> Channel? { channelsByID[id] }

    public func insertChannel(_ channel: Channel) throws {
        guard channelsByID[channel.id] == nil else { throw DomainError.alreadyExists("channel \(channel.id) already exists") }
        try record(.channel(channel), .channel(channel.id, nil), "insertChannel")
        channelsByID[channel.id] = channel
    }

    public func updateChannel(_ channel: Channel) throws {
        guard let old = channelsByID[channel.id] else { throw DomainError.notFound("channel \(channel.id) does not exist") }
        try record(.channel(channel), .channel(channel.id, old), "updateChannel")
        channelsByID[channel.id] = channel
    }

    public func channels(after: String?, limit: Int) throws -> [Channel] {
        Array(channelsByID.keys.filter { after == nil || $0 > after! }.sorted().prefix(max(0, limit)).map { channelsByID[$0]! })
    }

    // MARK: Reps

    public func rep(id: String) throws -> Rep? { repsByID[id] }

    public func upsertRep(_ rep: Rep) throws {
        try record(.rep(rep), .rep(rep.id, repsByID[rep.id]), "upsertRep")
        putRep(rep)
    }

    public func reps(after: String?, limit: Int) throws -> [Rep] {
        Array(repsByID.keys.filter { after == nil || $0 > after! }.sorted().prefix(max(0, limit)).map { repsByID[$0]! })
    }

    public func availableReps() throws -> [Rep] { available.map { repsByID[$0.id]! } }

    /// From the routing index: reads the one rep it picks.
    public func bestAvailableRep(for channel: Channel) throws -> Rep? {
        SessionEngine.bestCandidate(for: channel, among: available).map { repsByID[available[$0].id]! }
    }

    public func hasAvailableCapacity() throws -> Bool { available.contains { $0.freeCapacity > 0 } }

    // MARK: Sessions

    public func session(id: String) throws -> Session? {
        if let session = sessionsByID[id] { return session }
        return try journal.readDurable { try $0.session(id: id) }
    }

    public func openSession(conversationId: String) throws -> Session? {
        openByConversation[conversationId].flatMap { sessionsByID[$0] }
    }

    public func insertSession(_ session: Session) throws {
        guard sessionsByID[session.id] == nil else { throw DomainError.alreadyExists("session \(session.id) already exists") }
        if session.status.isOpen, let open = openByConversation[session.conversationId] {
            throw DomainError.alreadyExists("conversation \(session.conversationId) already has open session \(open)")
        }
        try requireReferences(of: session)
        try recordSession(session, old: nil, "insertSession")
        putSession(session, replacing: nil)
        // A new session has no events yet: its first append needs no store read.
        lastSequence[session.id] = 0
    }

    public func updateSession(_ session: Session) throws {
        let inMemory = sessionsByID[session.id]
        let stored: Session
        if let inMemory {
            stored = inMemory
        } else if let durable = try journal.readDurable({ try $0.session(id: session.id) }) {
            stored = durable
        } else {
            throw DomainError.notFound("session \(session.id) does not exist")
        }
        guard stored.version == session.version - 1 else {
            throw DomainError.aborted(
                "session \(session.id) was changed concurrently (stored version \(stored.version), update expected \(session.version - 1)); retry")
        }
        guard stored.conversationId == session.conversationId else {
            throw DomainError.invalidArgument("session \(session.id) cannot move to another conversation")
        }
        if session.status.isOpen, let open = openByConversation[session.conversationId], open != session.id {
            throw DomainError.alreadyExists("conversation \(session.conversationId) already has open session \(open)")
        }
        // The stored state's references held when it was written, and channels and reps are never
        // deleted: only a changed reference needs a look.
        if stored.channelId != session.channelId || (session.repId != nil && stored.repId != session.repId) {
            try requireReferences(of: session)
        }
        try recordSession(session, old: inMemory, "updateSession")
        putSession(session, replacing: inMemory)
    }

    /// The store's foreign keys, checked in memory (every channel and rep is in memory).
    private func requireReferences(of session: Session) throws {
        guard channelsByID[session.channelId] != nil else { throw DomainError.notFound("channel \(session.channelId) does not exist") }
        if let repId = session.repId, repsByID[repId] == nil { throw DomainError.notFound("rep \(repId) does not exist") }
    }

    private func requireSessionExists(_ id: String) throws {
        if sessionsByID[id] != nil { return }
        guard try journal.readDurable({ try $0.session(id: id) }) != nil else {
            throw DomainError.notFound("session \(id) does not exist")
        }
    }

    /// From the store, overlaid with the sessions whose latest state is not yet durable.
    public func sessions(matching filter: SessionFilter, after: String?, limit: Int) throws -> [Session] {
        let limit = max(0, limit)
        let pending = pendingVersions
        let durable = try journal.readDurable { try $0.sessions(matching: filter, after: after, limit: limit + pending.count) }
        var merged = durable.filter { pending[$0.id] == nil }
        for id in pending.keys {
            guard let session = sessionsByID[id], filter.matches(session), after.map({ id > $0 }) ?? true else { continue }
            merged.append(session)
        }
        merged.sort { $0.id < $1.id }
        return Array(merged.prefix(limit))
    }

    public func waitingSessions(after position: QueuePosition?, limit: Int) throws -> [Session] {
        var start = 0
        if let position {
            start = lowerBound(queue, position)
            if start < queue.count, queue[start] == position { start += 1 }
        }
        let end = min(queue.count, start + max(0, limit))
        guard start < end else { return [] }
        return queue[start..<end].map { sessionsByID[$0.sessionId]! }
    }

    public func sessions(repId: String, status: SessionStatus) throws -> [Session] {
        if status == .ended {
            // Ended sessions leave memory once the tables hold them: the store's, minus any that
            // memory still holds (its copy is the newer), plus memory's own, in id order.
            let stored = try journal.readDurable { try $0.sessions(repId: repId, status: .ended) }
            let held = (byRepStatus[RepStatus(repId: repId, status: .ended)] ?? []).compactMap { sessionsByID[$0] }
            return (stored.filter { sessionsByID[$0.id] == nil } + held).sorted { $0.id < $1.id }
        }
        return (byRepStatus[RepStatus(repId: repId, status: status)] ?? []).sorted().map { sessionsByID[$0]! }
    }

    /// Memory's sessions, and ended ones from the store (the engine clears an ended session's
    /// deadlines, but the contract covers any session). Not on the owner's path: it fires from
    /// its heap (``takeDue(at:limit:)``).
    public func sessionsWithDueDeadline(at now: Timestamp, limit: Int) throws -> [Session] {
        let durable = try journal.readDurable { try $0.sessionsWithDueDeadline(at: now, limit: limit + sessionsByID.count) }
        let candidates = durable.filter { sessionsByID[$0.id] == nil } + Array(sessionsByID.values)
        let due = candidates.compactMap { s -> (Timestamp, Session)? in
            guard let d = [s.inactivityDeadline, s.autoEndDeadline].compactMap({ $0 }).filter({ $0 <= now }).min() else { return nil }
            return (d, s)
        }
        return Array(due.sorted { ($0.0, $0.1.id) < ($1.0, $1.1.id) }.prefix(max(0, limit)).map(\.1))
    }

    // MARK: Events

    /// Reads, in one store read, the last event sequence of every open session in `ids` whose
    /// sequence memory does not know yet (sessions loaded at start-up): their next events then
    /// need no read each. Kept outside the undo log: these are durable facts, right either way.
    public func prefetchLastSequences(_ ids: [String]) throws {
        let missing = ids.filter { lastSequence[$0] == nil && sessionsByID[$0] != nil }
        guard !missing.isEmpty else { return }
        let known = try journal.lastSequences(sessionIds: missing)
        for id in missing { lastSequence[id] = known[id] ?? 0 }
    }

    public func appendEvent(_ event: Event) throws -> Event {
        // A known sequence proves that the session exists: sessions are never deleted, and
        // taking back an insert clears its entry.
        let previous = lastSequence[event.sessionId]
        let last: Int64
        if let previous {
            last = previous
        } else {
            try requireSessionExists(event.sessionId)
            last = try journal.lastSequence(sessionId: event.sessionId)
        }
        var stored = event
        stored.sequence = last + 1
        stored.cursor = headCursor + 1
        try record(.event(stored), .event(sessionId: event.sessionId, lastSequence: previous, head: headCursor), "appendEvent")
        lastSequence[event.sessionId] = stored.sequence
        headCursor = stored.cursor
        pendingEvents.append(stored)
        return stored
    }

    /// The store's events, then the ones it does not hold yet.
    public func events(sessionId: String, afterSequence: Int64, limit: Int) throws -> [Event] {
        var events = try journal.readDurable { try $0.events(sessionId: sessionId, afterSequence: afterSequence, limit: limit) }
        let after = events.last?.sequence ?? afterSequence
        for event in pendingEvents[settledEvents...] where events.count < limit && event.sessionId == sessionId && event.sequence > after {
            events.append(event)
        }
        return events
    }

    public func events(afterCursor: Int64, limit: Int) throws -> [Event] {
        var events = try journal.readDurable { try $0.events(afterCursor: afterCursor, limit: limit) }
        let after = events.last?.cursor ?? afterCursor
        for event in pendingEvents[settledEvents...] where events.count < limit && event.cursor > after { events.append(event) }
        return events
    }

    public func latestEventCursor() throws -> Int64 { headCursor }

    // MARK: Messages

    public func message(channelId: String, id: String) throws -> Message? {
        if let pending = pendingMessages[MessageKey(channelId: channelId, messageId: id)] { return pending }
        guard fingerprints.contains(MessageFingerprint.of(channelId: channelId, messageId: id)) else { return nil }
        return try journal.readDurable { try $0.message(channelId: channelId, id: id) }
    }

    public func insertMessage(_ message: Message) throws {
        if try self.message(channelId: message.channelId, id: message.messageId) != nil {
            throw DomainError.alreadyExists("message \(message.messageId) already exists on channel \(message.channelId)")
        }
        try requireSessionExists(message.sessionId)
        try record(.message(message), .message(channelId: message.channelId, messageId: message.messageId), "insertMessage")
        pendingMessages[MessageKey(channelId: message.channelId, messageId: message.messageId)] = message
        fingerprints.insert(MessageFingerprint.of(channelId: message.channelId, messageId: message.messageId))
    }

    // MARK: Settings

    public func setting(_ key: String) throws -> Int64? { settings[key] }

    public func setSetting(_ key: String, _ value: Int64) throws {
        try record(.setting(key, value), .setting(key, settings[key]), "setSetting")
        settings[key] = value
    }
}

/// Misuse of a partition, reported instead of corrupting it.
public enum PartitionStateError: Error, CustomStringConvertible {
    case writeInRead(String)
    case nestedCommand
    /// The owner was stopped (a clean stop, a disabled tenant, a tenant handed to another instance).
    case stopped

    public var description: String {
        switch self {
        case .writeInRead(let operation): "\(operation) is a write, called inside a read (a read-only command)"
        case .nestedCommand: "a blocking command was called inside a write closure (a command on the same owner); it would wait for itself"
        case .stopped: "this partition is no longer served here"
        }
    }
}

private func lowerBound<T: Comparable>(_ array: [T], _ value: T) -> Int {
    lowerBound(array) { $0 < value }
}

/// The first index whose element is not `below` (the array is ordered so that `below` holds for a prefix).
private func lowerBound<T>(_ array: [T], _ below: (T) -> Bool) -> Int {
    var low = 0, high = array.count
    while low < high {
        let mid = (low + high) / 2
        if below(array[mid]) { low = mid + 1 } else { high = mid }
    }
    return low
}

/// A binary min-heap of (deadline, session id); entries go stale when a session's deadline changes
/// and are dropped when they reach the top.
struct DeadlineHeap {
    private var items: [(deadline: Timestamp, sessionId: String)] = []

    init() {}

    /// A heap of `unordered` built in O(n) (Floyd).
    init(unordered: [(deadline: Timestamp, sessionId: String)]) {
        items = unordered
        items.withUnsafeMutableBufferPointer { heap in
            var i = heap.count / 2
            while i > 0 {
                i -= 1
                Self.siftDown(heap, from: i)
            }
        }
    }

    var count: Int { items.count }
    var peek: (deadline: Timestamp, sessionId: String)? { items.first }

    /// Compares in place: the deadlines first, the ids (copied, so retained) only on a tie. The
    /// sifts move entries through the buffer without copying them, so a 1M-entry heap's pop
    /// does not retain and release ~20 ids.
    private static func less(_ heap: UnsafeMutableBufferPointer<(deadline: Timestamp, sessionId: String)>, _ a: Int, _ b: Int) -> Bool {
        let da = heap[a].deadline, db = heap[b].deadline
        return da != db ? da < db : heap[a].sessionId < heap[b].sessionId
    }

    mutating func push(_ deadline: Timestamp, _ sessionId: String) {
        items.append((deadline, sessionId))
        items.withUnsafeMutableBufferPointer { heap in
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard Self.less(heap, i, parent) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        items.withUnsafeMutableBufferPointer { Self.siftDown($0, from: 0) }
    }

    private static func siftDown(_ heap: UnsafeMutableBufferPointer<(deadline: Timestamp, sessionId: String)>, from start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(heap, l, m) { m = l }
            if r < heap.count, less(heap, r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
    }
}
