internal import CSQLite

extension SQLiteConnection {
    /// Runs `body` in a transaction: commits when it returns, rolls back when it
    /// (or the commit) throws, and rethrows.
    ///
    /// Writers use `.immediate` so that the write lock is taken at `BEGIN`: two
    /// writers then never interleave, and a busy database shows up at `BEGIN`
    /// (after the busy timeout) instead of in the middle of the work.
    @discardableResult
    package func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T {
        guard !isInTransaction else {
            throw SQLiteError.misuse("a transaction is already open on this connection; use savepoint(_:_:)")
        }
        try execute("BEGIN \(kind.rawValue) TRANSACTION")
        let result: T
        do {
            result = try body()
            try execute("COMMIT TRANSACTION")
        } catch {
            rollbackAfterError()
            throw error
        }
        return result
    }

    /// Runs `body` inside `SAVEPOINT name`: on return the savepoint is released
    /// (merged into the enclosing transaction), on a thrown error its changes
    /// alone are rolled back. Outside a transaction it behaves like a deferred
    /// transaction.
    @discardableResult
    package func savepoint<T>(_ name: String = "unit", _ body: () throws -> T) throws -> T {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw SQLiteError.misuse("invalid savepoint name \(name)")
        }
        try execute("SAVEPOINT \(name)")
        do {
            let result = try body()
            try execute("RELEASE SAVEPOINT \(name)")
            return result
        } catch {
            // ROLLBACK TO keeps the savepoint open: release it too. Both can
            // only fail if SQLite already rolled the whole transaction back
            // (after SQLITE_FULL, SQLITE_IOERR, ...), and then there is
            // nothing left to undo.
            if isInTransaction {
                try? execute("ROLLBACK TRANSACTION TO SAVEPOINT \(name)")
                try? execute("RELEASE SAVEPOINT \(name)")
            }
            throw error
        }
    }

    /// Rolls back the open transaction, if SQLite has not already done so.
    private func rollbackAfterError() {
        // After some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...)
        // SQLite rolls back by itself; a second ROLLBACK would fail.
        guard isInTransaction else { return }
        do {
            try execute("ROLLBACK TRANSACTION")
        } catch {
            // Statements are reset after each use, so ROLLBACK has no pending
            // reader to trip on. If it still fails, the connection is left
            // inside a transaction; the next `transaction` call reports it
            // instead of nesting, and the caller already gets the first error.
        }
    }
}
