public import SessionCore

extension PostgresRepository {
    /// The message record `id`, or `nil`.
    public func message(id: String) throws -> Message? {
        try reader("message(id:)").queryOne(
            "SELECT \(Self.messageColumns) FROM messages WHERE message_id = $1", [id], Self.decodeMessage)
    }

    /// Stores a message record; `ALREADY_EXISTS` if the id is taken, `NOT_FOUND` if its session does not exist.
    public func insertMessage(_ message: Message) throws {
        let db = try writer("insertMessage")
        let inserted = try db.run(
            """
            INSERT INTO messages (\(Self.messageColumns))
            SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint
            WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $2::text)
            ON CONFLICT (message_id) DO NOTHING
            """,
            [message.messageId, message.sessionId, message.sender.rawValue, message.text, message.time])
        guard inserted == 0 else { return }
        if try db.queryOne("SELECT 1 FROM messages WHERE message_id = $1", [message.messageId], { _ in true }) != nil {
            throw DomainError.alreadyExists("message \(message.messageId) already exists")
        }
        throw DomainError.notFound("session \(message.sessionId) does not exist")
    }
}
