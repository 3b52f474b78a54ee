import SessionCore

/// A result row of either store, read by column index. `SQLiteRow` and
/// `PostgresRow` conform, so both repositories share one set of column lists
/// and decoders (`RowDecoding`).
package protocol StoredRow {
    func isNull(_ index: Int32) -> Bool
    func string(_ index: Int32) throws -> String
    func optionalString(_ index: Int32) throws -> String?
    func int64(_ index: Int32) throws -> Int64
    func optionalInt64(_ index: Int32) throws -> Int64?
    func int(_ index: Int32) throws -> Int
    func bool(_ index: Int32) throws -> Bool
    func bytes(_ index: Int32) throws -> [UInt8]
    /// The store's error for a stored value this build cannot read.
    static func corruptValue(table: String, column: String, value: String) -> any Error
}

extension SQLiteRow: StoredRow {
    package func bytes(_ index: Int32) throws -> [UInt8] { try blob(index) }
    package static func corruptValue(table: String, column: String, value: String) -> any Error {
        SQLiteStoreError.corruptValue(table: table, column: column, value: value)
    }
}

extension PostgresRow: StoredRow {
    package static func corruptValue(table: String, column: String, value: String) -> any Error {
        PostgresStoreError.corruptValue(table: table, column: column, value: value)
    }
}

/// Column lists and row decoders shared by both repositories (the schemas
/// have the same tables and columns). Each `columns` string and its decoder
/// read the same columns in the same order.
package protocol RowDecoding {}

extension SQLiteRepository: RowDecoding {}
extension PostgresRepository: RowDecoding {}

extension RowDecoding {
    static var channelColumns: String {
        """
        id, type, capacity_model, capacity_weight, customer_inactivity_timeout_ms,
        inactive_auto_end_after_ms, inactivate_action_visible
        """
    }

    static func decodeChannel(_ row: some StoredRow) throws -> Channel {
        Channel(
            id: try row.string(0),
            type: try decodeEnum(row, 1, table: "channels", column: "type"),
            capacityModel: try decodeEnum(row, 2, table: "channels", column: "capacity_model"),
            capacityWeight: try row.int(3),
            customerInactivityTimeout: try row.optionalInt64(4).map(Milliseconds.init),
            inactiveAutoEndAfter: Milliseconds(try row.int64(5)),
            inactivateActionVisible: try row.bool(6)
        )
    }

    static var repColumns: String { "id, display_name, capacity, presence, permissions, used_capacity, idle_since" }

    static func decodeRep<Row: StoredRow>(_ row: Row) throws -> Rep {
        Rep(
            id: try row.string(0),
            displayName: try row.string(1),
            capacity: try row.int(2),
            presence: try decodeEnum(row, 3, table: "reps", column: "presence"),
            permissions: try decodePermissions(try row.string(4), as: Row.self),
            usedCapacity: try row.int(5),
            idleSince: Timestamp(millisecondsSinceEpoch: try row.int64(6))
        )
    }

    /// Permissions are stored sorted and comma-separated, so equal sets store equal text.
    static func encodePermissions(_ permissions: Set<Permission>) -> String {
        permissions.map(\.rawValue).sorted().joined(separator: ",")
    }

    static func decodePermissions<Row: StoredRow>(_ text: String, as row: Row.Type) throws -> Set<Permission> {
        guard !text.isEmpty else { return [] }
        // Stored text is canonical, so one lookup decodes it. Routing reads every
        // available rep when sessions wait: splitting the text there took about
        // a tenth of the SQLite writer's time.
        if let known = canonicalPermissions[text] { return known }
        var permissions: Set<Permission> = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let permission = Permission(rawValue: String(name)) else {
                throw Row.corruptValue(table: "reps", column: "permissions", value: text)
            }
            permissions.insert(permission)
        }
        return permissions
    }

    static var sessionColumns: String {
        """
        id, conversation_id, channel_id, status, rep_id, created_at, updated_at, queued_at,
        inactivity_deadline, auto_end_deadline, awaiting_customer_since, held_capacity, end_reason, version
        """
    }

    static func decodeSession(_ row: some StoredRow) throws -> Session {
        Session(
            id: try row.string(0),
            conversationId: try row.string(1),
            channelId: try row.string(2),
            status: try decodeEnum(row, 3, table: "sessions", column: "status"),
            repId: try row.optionalString(4),
            createdAt: try decodeTimestamp(row, 5),
            updatedAt: try decodeTimestamp(row, 6),
            queuedAt: try decodeOptionalTimestamp(row, 7),
            inactivityDeadline: try decodeOptionalTimestamp(row, 8),
            autoEndDeadline: try decodeOptionalTimestamp(row, 9),
            awaitingCustomerSince: try decodeOptionalTimestamp(row, 10),
            heldCapacity: try row.int(11),
            endReason: try decodeOptionalEnum(row, 12, table: "sessions", column: "end_reason"),
            version: try row.int64(13)
        )
    }

    static var eventColumns: String {
        "cursor, session_id, sequence, \"time\", actor_kind, actor_id, from_status, to_status, rep_id, reason"
    }

    static func decodeEvent(_ row: some StoredRow) throws -> Event {
        Event(
            cursor: try row.int64(0),
            sessionId: try row.string(1),
            sequence: try row.int64(2),
            time: try decodeTimestamp(row, 3),
            actor: SessionCore.Actor(
                kind: try decodeEnum(row, 4, table: "events", column: "actor_kind"),
                id: try row.string(5)
            ),
            from: try decodeOptionalEnum(row, 6, table: "events", column: "from_status"),
            to: try decodeEnum(row, 7, table: "events", column: "to_status"),
            repId: try row.optionalString(8),
            reason: try decodeEnum(row, 9, table: "events", column: "reason")
        )
    }

    static var messageColumns: String { "message_id, channel_id, session_id, sender, text, \"time\"" }

    static func decodeMessage(_ row: some StoredRow) throws -> Message {
        Message(
            messageId: try row.string(0),
            channelId: try row.string(1),
            sessionId: try row.string(2),
            sender: try decodeEnum(row, 3, table: "messages", column: "sender"),
            text: try row.string(4),
            time: try decodeTimestamp(row, 5)
        )
    }

    static var tokenColumns: String { "token_hash, role, rep_id, name, created_at, revoked_at, tenant_id" }

    static func decodeToken(_ row: some StoredRow) throws -> APIToken {
        APIToken(
            hash: try row.bytes(0),
            role: try decodeEnum(row, 1, table: "tokens", column: "role"),
            repId: try row.optionalString(2),
            name: try row.string(3),
            createdAt: try decodeTimestamp(row, 4),
            revokedAt: try decodeOptionalTimestamp(row, 5)
        ).withTenant(try row.optionalString(6))
    }

    static var tenantColumns: String { "id, display_name, created_at, disabled_at" }

    static func decodeTenant(_ row: some StoredRow) throws -> TenantRecord {
        TenantRecord(
            id: try row.string(0), displayName: try row.string(1), createdAt: try decodeTimestamp(row, 2),
            disabledAt: try decodeOptionalTimestamp(row, 3))
    }

    // MARK: Helpers

    static func decodeTimestamp(_ row: some StoredRow, _ index: Int32) throws -> Timestamp {
        Timestamp(millisecondsSinceEpoch: try row.int64(index))
    }

    static func decodeOptionalTimestamp(_ row: some StoredRow, _ index: Int32) throws -> Timestamp? {
        try row.optionalInt64(index).map { Timestamp(millisecondsSinceEpoch: $0) }
    }

    static func decodeEnum<Row: StoredRow, Value: RawRepresentable>(
        _ row: Row, _ index: Int32, table: String, column: String
    ) throws -> Value where Value.RawValue == String {
        let text = try row.string(index)
        guard let value = Value(rawValue: text) else {
            throw Row.corruptValue(table: table, column: column, value: text)
        }
        return value
    }

    static func decodeOptionalEnum<Row: StoredRow, Value: RawRepresentable>(
        _ row: Row, _ index: Int32, table: String, column: String
    ) throws -> Value? where Value.RawValue == String {
        row.isNull(index) ? nil : try decodeEnum(row, index, table: table, column: column) as Value
    }
}

/// Every set of permissions (each subset of `Permission.allCases`), by its stored text.
private let canonicalPermissions: [String: Set<Permission>] = {
    var table: [String: Set<Permission>] = [:]
    let all = Permission.allCases
    for mask in 0..<(1 << all.count) {
        let set = Set(all.indices.filter { mask & (1 << $0) != 0 }.map { all[$0] })
        table[set.map(\.rawValue).sorted().joined(separator: ",")] = set
    }
    return table
}()
