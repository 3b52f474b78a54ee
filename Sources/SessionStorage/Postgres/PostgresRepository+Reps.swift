public import SessionCore

extension PostgresRepository {
    /// The rep `id`, or `nil`.
    public func rep(id: String) throws -> Rep? {
        try reader("rep(id:)").queryOne("SELECT \(Self.repColumns) FROM reps WHERE id = $1", [id], Self.decodeRep)
    }

    /// Inserts or replaces the rep with `rep.id`, every field included.
    public func upsertRep(_ rep: Rep) throws {
        try writer("upsertRep").run(
            """
            INSERT INTO reps (\(Self.repColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (id) DO UPDATE SET
                display_name = excluded.display_name, capacity = excluded.capacity, presence = excluded.presence,
                permissions = excluded.permissions, used_capacity = excluded.used_capacity,
                idle_since = excluded.idle_since
            """,
            [
                rep.id, rep.displayName, rep.capacity, rep.presence.rawValue,
                Self.encodePermissions(rep.permissions), rep.usedCapacity, rep.idleSince,
            ])
    }

    /// Up to `limit` reps with `id > after`, ordered by id.
    public func reps(after: String?, limit: Int) throws -> [Rep] {
        let db = try reader("reps(after:limit:)")
        if let after {
            return try db.query(
                "SELECT \(Self.repColumns) FROM reps WHERE id > $1 ORDER BY id LIMIT $2",
                [after, Self.limit(limit)], Self.decodeRep)
        }
        return try db.query(
            "SELECT \(Self.repColumns) FROM reps ORDER BY id LIMIT $1", [Self.limit(limit)], Self.decodeRep)
    }

    /// Every `AVAILABLE` rep, ordered by id.
    public func availableReps() throws -> [Rep] {
        try reader("availableReps()").query(
            "SELECT \(Self.repColumns) FROM reps WHERE presence = 'AVAILABLE' ORDER BY id", [], Self.decodeRep)
    }
}
