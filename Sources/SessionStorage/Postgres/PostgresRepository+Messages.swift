public import SessionCore

extension PostgresRepository {
    /// The message record `id` on channel `channelId`, or `nil`.
    public func message(channelId: String, id: String) throws -> Message? {
        try reader("message(channelId:id:)").queryOne(
            "SELECT \(Self.messageColumns) FROM messages WHERE channel_id = $1 AND message_id = $2", [channelId, id], Self.decodeMessage)
    }

    /// Stores a message record; `ALREADY_EXISTS` if the id is taken, `NOT_FOUND` if its session does not exist.
    public func insertMessage(_ message: Message) throws {
        let db = try writer("insertMessage")
        let inserted = try db.run(
            """
            INSERT INTO messages (\(Self.messageColumns))
            SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint
            WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $3::text)
            ON CONFLICT (channel_id, message_id) DO NOTHING
            """,
            [message.messageId, message.channelId, message.sessionId, message.sender.rawValue, message.text, message.time])
        guard inserted == 0 else { return }
        if try db.queryOne(
            "SELECT 1 FROM messages WHERE channel_id = $1 AND message_id = $2", [message.channelId, message.messageId], { _ in true }) != nil {
            throw DomainError.alreadyExists("message \(message.messageId) already exists on channel \(message.channelId)")
        }
        throw DomainError.notFound("session \(message.sessionId) does not exist")
    }
}
