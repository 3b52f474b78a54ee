public import SessionCore

extension SQLiteRepository {
    /// The channel `id`, or `nil`.
    public func channel(id: String) throws -> Channel? {
        try reader("channel(id:)").queryOne(
            "SELECT \(Self.channelColumns) FROM channels WHERE id = ?", [id], Self.decodeChannel)
    }

    /// Stores a new channel; `ALREADY_EXISTS` if the id is taken.
    public func insertChannel(_ channel: Channel) throws {
        let db = try writer("insertChannel")
        do {
            try db.run(
                """
                INSERT INTO channels (\(Self.channelColumns))
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                Self.channelValues(channel))
        } catch let error as SQLiteError where error.constraint == .primaryKey {
            throw DomainError.alreadyExists("channel \(channel.id) already exists")
        }
    }

    /// Replaces an existing channel; `NOT_FOUND` if it does not exist.
    public func updateChannel(_ channel: Channel) throws {
        let changed = try writer("updateChannel").run(
            """
            UPDATE channels SET type = ?2, capacity_model = ?3, capacity_weight = ?4,
                customer_inactivity_timeout_ms = ?5, inactive_auto_end_after_ms = ?6, inactivate_action_visible = ?7
            WHERE id = ?1
            """,
            Self.channelValues(channel))
        guard changed == 1 else {
            throw DomainError.notFound("channel \(channel.id) does not exist")
        }
    }

    /// Up to `limit` channels with `id > after`, ordered by id.
    public func channels(after: String?, limit: Int) throws -> [Channel] {
        let db = try reader("channels(after:limit:)")
        if let after {
            return try db.query(
                "SELECT \(Self.channelColumns) FROM channels WHERE id > ? ORDER BY id LIMIT ?",
                [after, Self.limit(limit)], Self.decodeChannel)
        }
        return try db.query(
            "SELECT \(Self.channelColumns) FROM channels ORDER BY id LIMIT ?", [Self.limit(limit)], Self.decodeChannel)
    }

    static func channelValues(_ channel: Channel) -> [any SQLiteBindable] {
        [
            channel.id, channel.type.rawValue, channel.capacityModel.rawValue, channel.capacityWeight,
            channel.customerInactivityTimeout, channel.inactiveAutoEndAfter, channel.inactivateActionVisible,
        ]
    }
}
