/// Server state that must survive restarts (for example the test clock's
/// offset): integer values by key, in the `settings` table.
extension SQLiteRepository {
    /// The value stored under `key`, or `nil`.
    public func setting(_ key: String) throws -> Int64? {
        try reader("setting(_:)").queryOne("SELECT value FROM settings WHERE key = ?", [key]) { try $0.int64(0) }
    }

    /// Stores `value` under `key`, replacing what was there.
    public func setSetting(_ key: String, _ value: Int64) throws {
        _ = try writer("setSetting(_:_:)").run(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])
    }
}
