/// The storage contract the `SessionEngine` runs against.
///
/// One engine operation calls these methods inside **one** store transaction; the storage layer
/// guarantees isolation (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a serializable transaction or
/// equivalent locking), and commits only if the operation returns without throwing. The methods are
/// synchronous and query-shaped so that they map onto indexed SQL:
///
/// - channels, reps: primary key `id`;
/// - sessions: primary key `id`; unique partial index on `conversation_id` where `status <> 'ENDED'`;
///   index `(status, queued_at, id)` for the queue; `(rep_id, status)`; `inactivity_deadline` and
///   `auto_end_deadline` (partial, non-null) for timers;
/// - events: primary key `cursor` (autoincrement); unique `(session_id, sequence)`;
/// - messages: primary key `message_id`.
///
/// Orderings below are part of the contract (pagination and determinism depend on them).
/// Errors: the `DomainError`s documented per method; anything else is a storage failure.
public protocol SessionRepository {
    // MARK: Channels

    /// The channel `id`, or `nil`.
    func channel(id: String) throws -> Channel?
    /// Stores a new channel; throws `DomainError(.alreadyExists)` if the id is taken.
    mutating func insertChannel(_ channel: Channel) throws
    /// Replaces an existing channel; throws `DomainError(.notFound)` if it does not exist.
    mutating func updateChannel(_ channel: Channel) throws
    /// Up to `limit` channels with `id > after` (all when `after` is `nil`), ordered by id.
    func channels(after: String?, limit: Int) throws -> [Channel]

    // MARK: Reps

    /// The rep `id`, or `nil`.
    func rep(id: String) throws -> Rep?
    /// Inserts or replaces the rep with `rep.id` (all fields, including permissions and usedCapacity).
    mutating func upsertRep(_ rep: Rep) throws
    /// Up to `limit` reps with `id > after` (all when `after` is `nil`), ordered by id.
    func reps(after: String?, limit: Int) throws -> [Rep]
    /// Every rep whose presence is `AVAILABLE` (the routing candidates), ordered by id.
    func availableReps() throws -> [Rep]
    /// The available rep routing gives a session of `channel` now (``SessionEngine/bestCandidate(for:among:)``
    /// over ``availableReps()``), or `nil`. A repository may answer from an index.
    func bestAvailableRep(for channel: Channel) throws -> Rep?
    /// True when some available rep has capacity left.
    func hasAvailableCapacity() throws -> Bool

    // MARK: Sessions

    /// The session `id`, or `nil`.
    func session(id: String) throws -> Session?
    /// The open (non-`ENDED`) session of `conversationId`, or `nil`. There is at most one.
    func openSession(conversationId: String) throws -> Session?
    /// Stores a new session; throws `DomainError(.alreadyExists)` if the id is taken or if the
    /// conversation already has an open session and `session` is open.
    mutating func insertSession(_ session: Session) throws
    /// Replaces a stored session. `session.version` is the new version: the store replaces the row only
    /// if its stored version is `session.version - 1`, and otherwise throws `DomainError(.aborted)`
    /// (a concurrent change won); it throws `DomainError(.notFound)` if the session does not exist.
    mutating func updateSession(_ session: Session) throws
    /// Up to `limit` sessions matching `filter` with `id > after` (all when `after` is `nil`), ordered by id.
    func sessions(matching filter: SessionFilter, after: String?, limit: Int) throws -> [Session]
    /// Up to `limit` `WAITING` sessions strictly after `position` in queue order (from the head when
    /// `nil`), ordered by `(queuedAt, id)`.
    func waitingSessions(after position: QueuePosition?, limit: Int) throws -> [Session]
    /// Every session of rep `repId` in `status`, ordered by id.
    func sessions(repId: String, status: SessionStatus) throws -> [Session]
    /// Up to `limit` sessions whose `inactivityDeadline` or `autoEndDeadline` is `<= now`, ordered by
    /// their earliest such deadline, then id.
    func sessionsWithDueDeadline(at now: Timestamp, limit: Int) throws -> [Session]

    // MARK: Events

    /// Appends `event`, assigning its `sequence` (1 + the session's last sequence, gapless) and its
    /// global `cursor` (strictly increasing across all sessions, > 0); returns the stored event.
    mutating func appendEvent(_ event: Event) throws -> Event
    /// Up to `limit` events of `sessionId` with `sequence > afterSequence`, ordered by sequence.
    func events(sessionId: String, afterSequence: Int64, limit: Int) throws -> [Event]
    /// Up to `limit` events of all sessions with `cursor > afterCursor`, ordered by cursor.
    func events(afterCursor: Int64, limit: Int) throws -> [Event]
    /// The highest cursor ever assigned (0 when no event was ever appended).
    func latestEventCursor() throws -> Int64

    // MARK: Messages

    /// The message record `id` on channel `channelId` (message ids are scoped per channel), or `nil`.
    func message(channelId: String, id: String) throws -> Message?
    /// Stores a message record; throws `DomainError(.alreadyExists)` if the id is taken on its channel.
    mutating func insertMessage(_ message: Message) throws

    /// A server setting (state that outlives a process, such as the test clock's offset), or `nil`.
    func setting(_ key: String) throws -> Int64?
    /// Stores a server setting, replacing its value.
    mutating func setSetting(_ key: String, _ value: Int64) throws
}
