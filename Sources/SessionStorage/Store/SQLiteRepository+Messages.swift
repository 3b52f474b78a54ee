public import SessionCore

extension SQLiteRepository {
    /// The message record `id` on channel `channelId`, or `nil`.
    public func message(channelId: String, id: String) throws -> Message? {
        try reader("message(channelId:id:)").queryOne(
            "SELECT \(Self.messageColumns) FROM messages WHERE channel_id = ? AND message_id = ?", [channelId, id], Self.decodeMessage)
    }

    /// Stores a message record; `ALREADY_EXISTS` if the id is taken, `NOT_FOUND` if its session does not exist.
    public func insertMessage(_ message: Message) throws {
        let db = try writer("insertMessage")
        do {
            try db.run(
                "INSERT INTO messages (\(Self.messageColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                [message.messageId, message.channelId, message.sessionId, message.sender.rawValue, message.text, message.time])
        } catch let error as SQLiteError {
            switch error.constraint {
            case .primaryKey: throw DomainError.alreadyExists("message \(message.messageId) already exists on channel \(message.channelId)")
            case .foreignKey: throw DomainError.notFound("session \(message.sessionId) does not exist")
            default: throw error
            }
        }
    }
}
