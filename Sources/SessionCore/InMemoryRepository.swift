/// The reference implementation of `SessionRepository`, held in memory as a value.
///
/// Being a value type, it gets transactions for free: `transaction(_:)` runs an operation on a copy
/// and keeps the copy only if the operation succeeds, so a throwing operation leaves no partial write.
/// Used by tests and as the executable specification for the SQL implementations.
public struct InMemoryRepository: SessionRepository, Sendable {
    private var channelsByID: [String: Channel] = [:]
    private var repsByID: [String: Rep] = [:]
    private var sessionsByID: [String: Session] = [:]
    private var openSessionByConversation: [String: String] = [:]
    private var eventLog: [Event] = []
    private var eventsBySession: [String: [Event]] = [:]
    private var messagesByKey: [MessageKey: Message] = [:]

    private var settings: [String: Int64] = [:]

    private struct MessageKey: Hashable {
        var channelId: String
        var messageId: String
    }

    /// Creates an empty repository.
    public init() {}

    /// Runs `body` on a copy of the repository and keeps the copy only if `body` returns normally:
    /// all-or-nothing, like a store transaction.
    public mutating func transaction<Result>(_ body: (inout InMemoryRepository) throws -> Result) rethrows -> Result {
        var copy = self
        let result = try body(&copy)
        self = copy
        return result
    }

    // MARK: Channels

    /// The channel `id`, or `nil`.
    public func channel(id: String) -> Channel? {
        channelsByID[id]
    }

    /// Stores a new channel; `ALREADY_EXISTS` if the id is taken.
    public mutating func insertChannel(_ channel: Channel) throws {
        guard channelsByID[channel.id] == nil else {
            throw DomainError.alreadyExists("channel \(channel.id) already exists")
        }
        channelsByID[channel.id] = channel
    }

    /// Replaces an existing channel; `NOT_FOUND` if missing.
    public mutating func updateChannel(_ channel: Channel) throws {
        guard channelsByID[channel.id] != nil else {
            throw DomainError.notFound("channel \(channel.id) does not exist")
        }
        channelsByID[channel.id] = channel
    }

    /// Channels after `after`, ordered by id.
    public func channels(after: String?, limit: Int) -> [Channel] {
        Self.page(channelsByID.values.filter { after == nil || $0.id > after! }.sorted { $0.id < $1.id }, limit)
    }

    // MARK: Reps

    /// The rep `id`, or `nil`.
    public func rep(id: String) -> Rep? {
        repsByID[id]
    }

    /// Inserts or replaces a rep.
    public mutating func upsertRep(_ rep: Rep) {
        repsByID[rep.id] = rep
    }

    /// Reps after `after`, ordered by id.
    public func reps(after: String?, limit: Int) -> [Rep] {
        Self.page(repsByID.values.filter { after == nil || $0.id > after! }.sorted { $0.id < $1.id }, limit)
    }

    /// `AVAILABLE` reps, ordered by id.
    public func availableReps() -> [Rep] {
        repsByID.values.filter { $0.presence == .available }.sorted { $0.id < $1.id }
    }

    // MARK: Sessions

    /// The session `id`, or `nil`.
    public func session(id: String) -> Session? {
        sessionsByID[id]
    }

    /// The open session of a conversation, or `nil`.
    public func openSession(conversationId: String) -> Session? {
        openSessionByConversation[conversationId].flatMap { sessionsByID[$0] }
    }

    /// Stores a new session; `ALREADY_EXISTS` on a duplicate id or a second open session of a conversation.
    public mutating func insertSession(_ session: Session) throws {
        guard sessionsByID[session.id] == nil else {
            throw DomainError.alreadyExists("session \(session.id) already exists")
        }
        if session.status.isOpen {
            if let open = openSessionByConversation[session.conversationId] {
                throw DomainError.alreadyExists("conversation \(session.conversationId) already has open session \(open)")
            }
            openSessionByConversation[session.conversationId] = session.id
        }
        sessionsByID[session.id] = session
    }

    /// Replaces a stored session if its stored version is `session.version - 1` (else `ABORTED`).
    public mutating func updateSession(_ session: Session) throws {
        guard let stored = sessionsByID[session.id] else {
            throw DomainError.notFound("session \(session.id) does not exist")
        }
        guard stored.version == session.version - 1 else {
            throw DomainError.aborted(
                "session \(session.id) was changed concurrently (stored version \(stored.version), update expected \(session.version - 1)); retry"
            )
        }
        guard stored.conversationId == session.conversationId else {
            throw DomainError.invalidArgument("session \(session.id) cannot move to another conversation")
        }
        if session.status.isOpen {
            if let open = openSessionByConversation[session.conversationId], open != session.id {
                throw DomainError.alreadyExists("conversation \(session.conversationId) already has open session \(open)")
            }
            openSessionByConversation[session.conversationId] = session.id
        } else if openSessionByConversation[session.conversationId] == session.id {
            openSessionByConversation[session.conversationId] = nil
        }
        sessionsByID[session.id] = session
    }

    /// Sessions matching `filter` after `after`, ordered by id.
    public func sessions(matching filter: SessionFilter, after: String?, limit: Int) -> [Session] {
        Self.page(
            sessionsByID.values.filter { (after == nil || $0.id > after!) && filter.matches($0) }.sorted { $0.id < $1.id },
            limit
        )
    }

    /// `WAITING` sessions after `position`, in queue order.
    public func waitingSessions(after position: QueuePosition?, limit: Int) -> [Session] {
        let waiting = sessionsByID.values.compactMap { session -> (QueuePosition, Session)? in
            guard session.status == .waiting else { return nil }
            let key = QueuePosition(queuedAt: session.queuedAt ?? session.updatedAt, sessionId: session.id)
            if let position, !(position < key) { return nil }
            return (key, session)
        }
        return Self.page(waiting.sorted { $0.0 < $1.0 }.map(\.1), limit)
    }

    /// The sessions of a rep in one status, ordered by id.
    public func sessions(repId: String, status: SessionStatus) -> [Session] {
        sessionsByID.values.filter { $0.repId == repId && $0.status == status }.sorted { $0.id < $1.id }
    }

    /// Sessions with a deadline `<= now`, earliest deadline first.
    public func sessionsWithDueDeadline(at now: Timestamp, limit: Int) -> [Session] {
        let due = sessionsByID.values.compactMap { session -> (Timestamp, Session)? in
            let deadlines = [session.inactivityDeadline, session.autoEndDeadline].compactMap { $0 }.filter { $0 <= now }
            guard let earliest = deadlines.min() else { return nil }
            return (earliest, session)
        }
        return Self.page(due.sorted { ($0.0, $0.1.id) < ($1.0, $1.1.id) }.map(\.1), limit)
    }

    // MARK: Events

    /// Appends an event, assigning sequence and cursor.
    public mutating func appendEvent(_ event: Event) -> Event {
        var stored = event
        stored.sequence = Int64(eventsBySession[event.sessionId, default: []].count + 1)
        stored.cursor = Int64(eventLog.count + 1)
        eventLog.append(stored)
        eventsBySession[event.sessionId, default: []].append(stored)
        return stored
    }

    /// Events of one session after a sequence number.
    public func events(sessionId: String, afterSequence: Int64, limit: Int) -> [Event] {
        let all = eventsBySession[sessionId] ?? []
        let start = Int(clamping: max(0, min(afterSequence, Int64(all.count))))
        return Self.page(Array(all[start...]), limit)
    }

    /// Events of all sessions after a global cursor.
    public func events(afterCursor: Int64, limit: Int) -> [Event] {
        // Cursors are 1...count, so the event with cursor c sits at index c - 1.
        let start = Int(clamping: max(0, min(afterCursor, Int64(eventLog.count))))
        return Self.page(Array(eventLog[start...]), limit)
    }

    /// The highest cursor assigned (cursors are 1...count).
    public func latestEventCursor() -> Int64 { Int64(eventLog.count) }

    // MARK: Messages

    /// The message record `id` on channel `channelId`, or `nil`.
    public func message(channelId: String, id: String) -> Message? {
        messagesByKey[MessageKey(channelId: channelId, messageId: id)]
    }

    /// Stores a message record; `ALREADY_EXISTS` if the id is taken on its channel.
    public mutating func insertMessage(_ message: Message) throws {
        let key = MessageKey(channelId: message.channelId, messageId: message.messageId)
        guard messagesByKey[key] == nil else {
            throw DomainError.alreadyExists("message \(message.messageId) already exists on channel \(message.channelId)")
        }
        messagesByKey[key] = message
    }

    // MARK: Settings

    public func setting(_ key: String) -> Int64? { settings[key] }

    public mutating func setSetting(_ key: String, _ value: Int64) { settings[key] = value }

    private static func page<Element>(_ elements: [Element], _ limit: Int) -> [Element] {
        Array(elements.prefix(max(0, limit)))
    }
}
