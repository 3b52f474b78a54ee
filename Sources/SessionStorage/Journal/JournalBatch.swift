public import SessionCore

/// One group commit: the rows that a run of engine commands changed, in the order they changed.
///
/// A batch is written in one store transaction, so it is durable as a whole or not at all. It
/// carries final states, not diffs: a session or rep changed by several commands of the batch is
/// written once, with its last state; events and messages are appended in order.
public struct JournalBatch: Sendable {
    public private(set) var channels: [Channel] = []
    public private(set) var reps: [Rep] = []
    public private(set) var sessions: [Session] = []
    public private(set) var events: [Event] = []
    public private(set) var messages: [Message] = []
    public private(set) var settings: [String: Int64] = [:]

    private var channelIndex: [String: Int] = [:]
    private var repIndex: [String: Int] = [:]
    private var sessionIndex: [String: Int] = [:]

    public init() {}

    public var isEmpty: Bool {
        channels.isEmpty && reps.isEmpty && sessions.isEmpty && events.isEmpty && messages.isEmpty && settings.isEmpty
    }

    public mutating func record(_ channel: Channel) {
        if let i = channelIndex[channel.id] { channels[i] = channel } else {
            channelIndex[channel.id] = channels.count
            channels.append(channel)
        }
    }

    public mutating func record(_ rep: Rep) {
        if let i = repIndex[rep.id] { reps[i] = rep } else {
            repIndex[rep.id] = reps.count
            reps.append(rep)
        }
    }

    public mutating func record(_ session: Session) {
        if let i = sessionIndex[session.id] { sessions[i] = session } else {
            sessionIndex[session.id] = sessions.count
            sessions.append(session)
        }
    }

    /// Adds a later batch: its final states replace this one's, its events and messages follow.
    public mutating func merge(_ later: JournalBatch) {
        for c in later.channels { record(c) }
        for r in later.reps { record(r) }
        for s in later.sessions { record(s) }
        events.append(contentsOf: later.events)
        messages.append(contentsOf: later.messages)
        for (key, value) in later.settings { settings[key] = value }
    }

    public mutating func record(_ event: Event) { events.append(event) }
    public mutating func record(_ message: Message) { messages.append(message) }
    public mutating func record(setting key: String, _ value: Int64) { settings[key] = value }
}

/// What a partition loads at start: everything it keeps in memory.
///
/// Ended sessions, events and message bodies stay in the store (read through
/// ``DurableLookup`` when needed); of messages only a fingerprint of each
/// (channel, message id) key is loaded, so that a new message id is known to be
/// new without a store read.
public struct PartitionSnapshot: Sendable {
    public var channels: [Channel] = []
    public var reps: [Rep] = []
    /// Every session that is not `ENDED`.
    public var openSessions: [Session] = []
    public var settings: [String: Int64] = [:]
    /// The highest event cursor ever assigned (0 when there is none).
    public var headCursor: Int64 = 0
    /// ``MessageFingerprint`` of every stored message.
    public var messageFingerprints: [UInt64] = []

    public init() {}
}

/// A 64-bit fingerprint of a message's key (FNV-1a over channel id, a separator, message id).
/// Equal keys have equal fingerprints; a match may be a collision, so it is confirmed by a read.
public enum MessageFingerprint {
    public static func of(channelId: String, messageId: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in channelId.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ 0xff) &* 0x100_0000_01b3
        for byte in messageId.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}

/// The durable side of a partition: loads it, commits its batches, and answers the reads that
/// memory does not hold (ended sessions, message bodies, events, lists). Every read sees durable
/// data only.
public protocol PartitionJournal: Sendable {
    /// Everything the partition keeps in memory, as stored.
    func loadPartition() throws -> PartitionSnapshot
    /// Writes `batch` in one transaction; returns once it is durable (per the store's durability).
    /// Called from one thread at a time.
    func commit(_ batch: JournalBatch) throws
    /// Reads from durable state (a snapshot that may or may not include a batch being committed).
    func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T
    /// The highest sequence of `sessionId`'s stored events (0 when none).
    func lastSequence(sessionId: String) throws -> Int64
    /// ``lastSequence(sessionId:)`` of many sessions in one read (0 or absent when none).
    func lastSequences(sessionIds: [String]) throws -> [String: Int64]
    /// Whether `commit` also writes the tables that `readDurable` reads. When it does not (the
    /// batch is durable in a log first), the journal calls the `onSettled` handler once the tables
    /// hold a run of batches, and memory keeps answering for them until then.
    var settlesOnCommit: Bool { get }
    /// Registers the handler for batches that reached the tables (in commit order).
    func onSettled(_ handler: @escaping @Sendable ([JournalBatch]) -> Void)
}

extension PartitionJournal {
    public func lastSequences(sessionIds: [String]) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for id in sessionIds { out[id] = try lastSequence(sessionId: id) }
        return out
    }

    public var settlesOnCommit: Bool { true }
    public func onSettled(_ handler: @escaping @Sendable ([JournalBatch]) -> Void) {}
}
