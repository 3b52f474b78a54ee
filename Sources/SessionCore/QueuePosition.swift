/// A position in the FIFO routing queue: `WAITING` sessions are ordered by `queuedAt`, then by id.
/// Used as a keyset cursor to page through the queue.
public struct QueuePosition: Sendable, Hashable, Comparable {
    /// When the session was queued.
    public var queuedAt: Timestamp
    /// The session id (tie-break).
    public var sessionId: String

    /// Creates a queue position.
    public init(queuedAt: Timestamp, sessionId: String) {
        self.queuedAt = queuedAt
        self.sessionId = sessionId
    }

    /// Queue order: earlier `queuedAt` first, then smaller id.
    public static func < (lhs: QueuePosition, rhs: QueuePosition) -> Bool {
        (lhs.queuedAt, lhs.sessionId) < (rhs.queuedAt, rhs.sessionId)
    }
}
