public import SessionCore
internal import Foundation
import Synchronization

/// PostgreSQL as the journal of a state owner: the instance that holds the
/// partition's lock keeps the partition in memory and writes each group commit
/// as **one statement** (data-modifying CTEs with multi-row `unnest` inserts:
/// one round trip, one transaction, one WAL flush per batch, whatever its size).
///
/// **Ownership and fencing.** The partition belongs to whoever holds the
/// session-level advisory lock ``lockKey`` on PostgreSQL. The lock is taken on
/// a dedicated connection and every batch is committed *on that same
/// connection*: a commit can only run while the lock is held, so an instance
/// that lost it can never write. The connection sets `idle_session_timeout`
/// and `idle_in_transaction_session_timeout` to the lease: an owner that is
/// paused (SIGSTOP), partitioned or dead stops pinging, PostgreSQL ends its
/// session after the lease, the lock is free, and a standby takes it; when
/// the old owner wakes up, its connection is gone, its commits fail, and it
/// stops (``onLost``). A live owner pings every lease/4.
///
/// When the lock connection fails while no commit is in flight (the database
/// restarted, the network dropped), the owner refuses commits and tries to
/// reconnect on each ping; it takes the lock again only if no other instance
/// owned the partition meanwhile (`partition_owner` still names this owner,
/// and a new owner writes its row before anything else), and then goes on
/// with its memory, which nothing else changed. Otherwise, or when a commit's
/// outcome is unknown (the connection failed during it), the partition is lost.
///
/// Reads of what is not in memory (ended sessions, event history, message
/// bodies) go through the store's reader pool.
public final class PostgresPartitionJournal: PartitionJournal, @unchecked Sendable {
    /// The advisory lock key of the default tenant's partition: ASCII "SessPart".
    public static let defaultLockKey: Int64 = 0x5365_7373_5061_7274

    /// The partition's advisory lock key: `defaultLockKey` for the default tenant, else a 64-bit
    /// FNV-1a hash of the tenant id (a collision would only make two tenants share one owner).
    public static func lockKey(partition: String) -> Int64 {
        guard partition != "default" else { return defaultLockKey }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "sessiond-partition:\(partition)".utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: hash)
    }

    /// The partition (tenant) this journal writes; its rows live in the store's schema.
    public let partition: String
    private let lockKey: Int64
    /// Set: batches go through the instance's group commit (with its other partitions'),
    /// fenced by the epoch; nil: each is committed on the lock connection.
    private var committer: PostgresGroupCommitter?

    /// Commits through `committer` from now on (before the partition is acquired).
    public func useGroupCommit(_ committer: PostgresGroupCommitter) {
        lock.withLock { self.committer = committer }
    }

    public let store: PostgresStore
    private let configuration: PostgresConnection.Configuration
    private let leaseMillis: Int64
    /// The lock connection; nil once lost. Guarded by `lock` (commits and pings take turns).
    private var connection: PostgresConnection?
    /// A standby's connection for its tries (kept, so that trying often costs no new backend);
    /// it becomes the lock connection when a try succeeds.
    private var candidate: PostgresConnection?
    /// Shared with the instance's other journals: their tries take turns on one connection.
    private let candidates: PostgresLockCandidate?
    private let lock = NSLock()
    private var pinger: (any DispatchSourceTimer)?
    /// What this owner wrote to `partition_owner` (nil before ``advertise(address:now:)``).
    private var advertised: (address: String, since: Int64, epoch: Int64)?
    /// The lock connection failed outside a commit: commits wait for a reconnection.
    private var reconnecting = false
    private var lost = false
    private let lostHandler = Mutex<(@Sendable (String) -> Void)?>(nil)
    /// Why the partition was lost (guarded by `lock`).
    private var lostReason: String?

    /// Opens the lock connection (not the lock yet). `lease`: how long a silent
    /// owner keeps the partition before PostgreSQL lets another take it.
    public init(store: PostgresStore, url: String, lease: Duration, partition: String = "default", candidates: PostgresLockCandidate? = nil) throws {
        self.store = store
        self.candidates = candidates
        self.partition = partition
        self.lockKey = Self.lockKey(partition: partition)
        self.leaseMillis = max(1000, PostgresStore.Options.milliseconds(lease))
        var configuration = store.options.connectionConfiguration(url: url)
        configuration.applicationName += " (owner of \(partition))"
        configuration.settings["idle_session_timeout"] = "\(leaseMillis)ms"
        configuration.settings["idle_in_transaction_session_timeout"] = "\(leaseMillis)ms"
        self.configuration = configuration
    }

    deinit { pinger?.cancel() }

    /// Tries to take the partition; true when this instance now owns it.
    /// Throws ``PostgresStoreError/unavailable(_:)`` when the database cannot be reached.
    public func tryAcquire() throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if connection != nil { return true }
        guard !lost, !reconnecting else { return false }
        do {
            let c = try candidate ?? candidates?.take(configuration) ?? PostgresConnection(configuration: configuration)
            candidate = c
            let taken = try c.queryOne("SELECT pg_try_advisory_lock($1)", [lockKey]) { try $0.bool(0) } ?? false
            guard taken else {
                if let candidates {
                    candidate = nil
                    candidates.giveBack(c, configuration)
                }
                return false
            }
            candidate = nil
            if candidates != nil {
                // A shared connection may have been opened for another partition: its name and schema.
                try PostgresLockCandidate.adopt(c, as: configuration)
            }
            connection = c
        } catch let error as PostgresError where error.meansUnavailable {
            candidate = nil
            throw PostgresStoreError.unavailable("\(store.database): \(error.message)")
        } catch {
            candidate = nil
            throw error
        }
        startPinging()
        return true
    }

    /// Records, on the lock connection (so only the owner can), where the owner answers.
    public func advertise(address: String, now: Int64) throws {
        lock.lock()
        defer { lock.unlock() }
        guard let c = connection else { throw PostgresStoreError.unavailable("this instance does not own the partition") }
        // A new epoch: every batch of this owner is conditional on it (see `statement`).
        let epoch = try c.queryOne(
            """
            INSERT INTO partition_owner (partition, address, since, epoch) VALUES ($1, $2, $3, 1)
            ON CONFLICT (partition) DO UPDATE SET address = excluded.address, since = excluded.since,
                epoch = partition_owner.epoch + 1
            RETURNING epoch
            """, [partition, address, now]) { try $0.int64(0) } ?? 0
        advertised = (address, now, epoch)
    }

    /// The fencing epoch this owner advertised (0 before ``advertise(address:now:)``).
    public var epoch: Int64 { lock.withLock { advertised?.epoch ?? 0 } }

    /// Where the partition's owner answers, as it advertised it (nil: none yet).
    public func ownerAddress() throws -> String? {
        try store.read { (repo: PostgresRepository) throws -> String? in
            try repo.connection.queryOne("SELECT address FROM partition_owner WHERE partition = $1", [partition]) { try $0.string(0) }
        }
    }

    /// Called once, from any thread, when the partition was lost (the lock
    /// connection failed: PostgreSQL has released the lock, another may hold it).
    public func onLost(_ handler: @escaping @Sendable (String) -> Void) {
        lostHandler.withLock { $0 = handler }
    }

    /// True while this instance holds the partition.
    public var isOwner: Bool { lock.withLock { connection != nil || reconnecting } }

    /// Gives the partition up at once (a clean stop): the next owner need not wait for the lease.
    public func release() {
        lock.lock()
        defer { lock.unlock() }
        pinger?.cancel()
        pinger = nil
        if let c = connection { _ = try? c.execute("SELECT pg_advisory_unlock_all()") }
        connection = nil
        candidate = nil
        // Given up: the next acquisition advertises a new epoch before it may commit.
        advertised = nil
        reconnecting = false
    }

    private func startPinging() {
        let interval = Double(leaseMillis) / 4000
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .userInitiated))
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(Int(interval * 100)))
        timer.setEventHandler { [weak self] in self?.ping() }
        pinger = timer
        timer.resume()
    }

    private func ping() {
        lock.lock()
        defer { lock.unlock() }
        if reconnecting { return reclaimLocked() }
        guard let c = connection else { return }
        do {
            try c.execute("SELECT 1")
        } catch {
            // No commit was in flight (they take the same lock): memory and database agree.
            connection = nil
            reconnecting = true
            reclaimLocked()
        }
    }

    /// Takes the lock again on a new connection if no other instance owned the partition meanwhile.
    private func reclaimLocked() {
        guard reconnecting, !lost else { return }
        let c: PostgresConnection
        do {
            c = try PostgresConnection(configuration: configuration)
            guard try c.queryOne("SELECT pg_try_advisory_lock($1)", [lockKey], { try $0.bool(0) }) == true else {
                return lostLocked("another instance holds the partition's lock")
            }
        } catch {
            return  // the database is still away: commits stay refused, the next ping tries again
        }
        let row = try? c.queryOne("SELECT address, since, epoch FROM partition_owner WHERE partition = $1", [partition]) {
            (try $0.string(0), try $0.int64(1), try $0.int64(2))
        }
        guard let row, let advertised, row.0 == advertised.address, row.1 == advertised.since, row.2 == advertised.epoch else {
            _ = try? c.execute("SELECT pg_advisory_unlock_all()")
            return lostLocked("another instance owned the partition while the database was unreachable")
        }
        connection = c
        reconnecting = false
    }

    /// With `lock` held.
    private func lostLocked(_ reason: String) {
        guard !lost else { return }
        lost = true
        reconnecting = false
        connection = nil
        pinger?.cancel()
        pinger = nil
        lostReason = reason
        let handler = lostHandler.withLock { $0 }
        DispatchQueue.global().async { handler?(reason) }
    }

    // MARK: PartitionJournal

    public func loadPartition() throws -> PartitionSnapshot {
        try store.read { (repo: PostgresRepository) throws -> PartitionSnapshot in
            let db = repo.connection
            var snapshot = PartitionSnapshot()
            snapshot.channels = try db.query("SELECT \(PostgresRepository.channelColumns) FROM channels", [], PostgresRepository.decodeChannel)
            snapshot.reps = try db.query("SELECT \(PostgresRepository.repColumns) FROM reps", [], PostgresRepository.decodeRep)
            snapshot.openSessions = try db.query(
                "SELECT \(PostgresRepository.sessionColumns) FROM sessions WHERE status <> 'ENDED'", [],
                PostgresRepository.decodeSession)
            for (key, value) in try db.query("SELECT key, value FROM settings", [], { (try $0.string(0), try $0.int64(1)) }) {
                snapshot.settings[key] = value
            }
            snapshot.headCursor = try db.queryOne("SELECT coalesce(max(cursor), 0) FROM events", []) { try $0.int64(0) } ?? 0
            snapshot.messageFingerprints = try db.query("SELECT channel_id, message_id FROM messages", []) { row in
                MessageFingerprint.of(channelId: try row.string(0), messageId: try row.string(1))
            }
            return snapshot
        }
    }

    public func commit(_ batch: JournalBatch) throws {
        guard !batch.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        guard let c = connection else {
            if reconnecting { throw PostgresStoreError.unavailable("\(store.database) is unreachable; reconnecting") }
            throw PostgresStoreError.unavailable(
                "this instance no longer owns the partition (\(lostReason ?? "not acquired")); its writes are refused")
        }
        // A connection the server closed while it sat idle (a restart, an administrator) says so
        // before anything is sent: then nothing of this batch reached the database.
        guard !c.receivedWhileIdle(), c.isAliveAfterIdling() else {
            connection = nil
            reconnecting = true
            reclaimLocked()
            throw PostgresStoreError.unavailable("\(store.database) closed the connection; reconnecting")
        }
        do {
            // True: written; false: the epoch was not this owner's, so nothing was (the fence).
            let written: Bool
            if let committer {
                // The lock connection still says the partition is held (checked above); the epoch
                // fences the write on the shared connection.
                written = try committer.commit(batch, partition: partition, epoch: advertised?.epoch ?? 0, schema: store.options.schema)
            } else {
                let (sql, arguments) = Self.statement(for: batch, partition: partition, epoch: advertised?.epoch ?? 0)
                written = try c.queryOne(sql, arguments, { try $0.bool(0) }) == true
            }
            guard written else {
                lostLocked("the partition's epoch is no longer this owner's: another instance took it over")
                throw PostgresStoreError.unavailable("this instance no longer owns the partition (another took it over); its writes are refused")
            }
        } catch let error as PostgresError where error.meansUnavailable {
            // Whether it committed is unknown, and the lock went with the connection.
            lostLocked("the partition lock's connection failed during a commit: \(error.message)")
            throw PostgresStoreError.unavailable("\(store.database): the connection failed during a commit, so its outcome is unknown: \(error.message)")
        }
    }

    public func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try store.read { (repo: PostgresRepository) throws -> T in try body(repo) }
    }

    public func lastSequence(sessionId: String) throws -> Int64 {
        try store.read { (repo: PostgresRepository) throws -> Int64 in
            try repo.connection.queryOne(
                "SELECT coalesce(max(sequence), 0) FROM events WHERE session_id = $1", [sessionId], { try $0.int64(0) }) ?? 0
        }
    }

    public func lastSequences(sessionIds: [String]) throws -> [String: Int64] {
        guard !sessionIds.isEmpty else { return [:] }
        let ids = PostgresValue.text(Self.arrayLiteral(sessionIds.map { .text($0) }))
        return try store.read { (repo: PostgresRepository) throws -> [String: Int64] in
            var out: [String: Int64] = [:]
            for (id, last) in try repo.connection.query(
                "SELECT session_id, max(sequence) FROM events WHERE session_id = ANY($1::text[]) GROUP BY session_id",
                [ids], { (try $0.string(0), try $0.int64(1)) }) {
                out[id] = last
            }
            return out
        }
    }

    // MARK: The batch statement

    /// One statement for the whole batch: `SELECT apply_batch(...)` (schema version 6), the rows of
    /// each table as one array parameter per column, so the statement's text never changes and
    /// the function's statements keep their plans. It answers true when it wrote, false when the
    /// epoch had moved on (the fence, inside the function).
    static func statement(for batch: JournalBatch, partition: String, epoch: Int64) -> (String, [any PostgresBindable]) {
        var arguments: [any PostgresBindable] = []
        let call = applyCall(for: batch, partition: partition, epoch: epoch, schema: nil, arguments: &arguments)
        return ("SELECT " + call, arguments)
    }

    /// The call of `schema`'s `apply_batch` (nil: the connection's search path) for one partition's
    /// batch, numbering its 48 parameters after `arguments`. Every table's arrays are passed, empty
    /// when it has no rows, so a call's text depends only on the schema and where it starts.
    static func applyCall(
        for batch: JournalBatch, partition: String, epoch: Int64, schema: String?, arguments: inout [any PostgresBindable]
    ) -> String {
        arguments.append(partition)
        arguments.append(epoch)
        var parameters = ["$\(arguments.count - 1)::text", "$\(arguments.count)::bigint"]
        func arrays(_ columns: [(type: String, values: [PostgresValue])]) {
            for column in columns {
                arguments.append(PostgresValue.text(arrayLiteral(column.values)))
                parameters.append("$\(arguments.count)::\(column.type)[]")
            }
        }
        func v(_ b: some PostgresBindable) -> PostgresValue { b.postgresValue }
        let c = batch.channels
        arrays([
            ("text", c.map { v($0.id) }), ("text", c.map { v($0.type.rawValue) }),
            ("text", c.map { v($0.capacityModel.rawValue) }), ("bigint", c.map { v($0.capacityWeight) }),
            ("bigint", c.map { v($0.customerInactivityTimeout) }), ("bigint", c.map { v($0.inactiveAutoEndAfter) }),
            ("boolean", c.map { v($0.inactivateActionVisible) }),
        ])
        let r = batch.reps
        arrays([
            ("text", r.map { v($0.id) }), ("text", r.map { v($0.displayName) }), ("bigint", r.map { v($0.capacity) }),
            ("text", r.map { v($0.presence.rawValue) }), ("text", r.map { v(PostgresRepository.encodePermissions($0.permissions)) }),
            ("bigint", r.map { v($0.usedCapacity) }), ("bigint", r.map { v($0.idleSince) }),
        ])
        let ss = batch.sessions
        arrays([
            ("text", ss.map { v($0.id) }), ("text", ss.map { v($0.conversationId) }), ("text", ss.map { v($0.channelId) }),
            ("text", ss.map { v($0.status.rawValue) }), ("text", ss.map { v($0.repId) }),
            ("bigint", ss.map { v($0.createdAt) }), ("bigint", ss.map { v($0.updatedAt) }), ("bigint", ss.map { v($0.queuedAt) }),
            ("bigint", ss.map { v($0.inactivityDeadline) }), ("bigint", ss.map { v($0.autoEndDeadline) }),
            ("bigint", ss.map { v($0.awaitingCustomerSince) }), ("bigint", ss.map { v($0.heldCapacity) }),
            ("text", ss.map { v($0.endReason?.rawValue) }), ("bigint", ss.map { v($0.version) }),
        ])
        let e = batch.events
        arrays([
            ("bigint", e.map { v($0.cursor) }), ("text", e.map { v($0.sessionId) }), ("bigint", e.map { v($0.sequence) }),
            ("bigint", e.map { v($0.time) }), ("text", e.map { v($0.actor.kind.rawValue) }), ("text", e.map { v($0.actor.id) }),
            ("text", e.map { v($0.from?.rawValue) }), ("text", e.map { v($0.to.rawValue) }), ("text", e.map { v($0.repId) }),
            ("text", e.map { v($0.reason.rawValue) }),
        ])
        let m = batch.messages
        arrays([
            ("text", m.map { v($0.messageId) }), ("text", m.map { v($0.channelId) }), ("text", m.map { v($0.sessionId) }),
            ("text", m.map { v($0.sender.rawValue) }), ("text", m.map { v($0.text) }), ("bigint", m.map { v($0.time) }),
        ])
        let keys = batch.settings.keys.sorted()
        arrays([("text", keys.map { v($0) }), ("bigint", keys.map { v(batch.settings[$0]!) })])
        return (schema.map { $0 + "." } ?? "") + "apply_batch(" + parameters.joined(separator: ", ") + ")"
    }

    /// A PostgreSQL array literal (`{"a","b",NULL}`) of text-format values: every element
    /// quoted, quotes and backslashes escaped, so no text (braces, commas, spaces, the word NULL) can be
    /// misread. Built as UTF-8 bytes: this runs for every value of every batch on the owner's
    /// commit path (per-scalar `String` appends cost ~20 µs per state change at 250 changes a batch).
    static func arrayLiteral(_ values: [PostgresValue]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 16 + 2)
        out.append(UInt8(ascii: "{"))
        for (i, value) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            switch value {
            case .null:
                out.append(contentsOf: "NULL".utf8)
            case .text(var s):
                out.append(UInt8(ascii: "\""))
                s.withUTF8 { bytes in
                    for b in bytes {
                        if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                        out.append(b)
                    }
                }
                out.append(UInt8(ascii: "\""))
            case .bytes:
                preconditionFailure("bytea values are not journaled")
            }
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
