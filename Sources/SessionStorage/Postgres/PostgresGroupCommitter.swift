internal import Dispatch
internal import Foundation

/// One group commit for all the partitions an instance owns: the batches their journals hand in
/// while one statement is in flight go together into the next, each partition's rows fenced by
/// its own epoch (inside its `apply_batch`), so that one instance makes one PostgreSQL commit (one round
/// trip, one WAL flush) per round whatever the number of its tenants. A tenant's batch never
/// waits for a lock of another: at most for the statement in flight, as within one tenant.
///
/// The statement calls each partition's `apply_batch` (its schema's, see `PostgresSchema.version6`),
/// which writes only if its epoch is still the one in its `partition_owner` row, and the statement
/// answers that per partition: one tenant taken over
/// by another instance writes nothing while the others' rows commit.
public final class PostgresGroupCommitter: @unchecked Sendable {
    private let configuration: PostgresConnection.Configuration
    private let queue = DispatchQueue(label: "sessiond.group-commit")
    private let lock = NSLock()
    private var pending: [Entry] = []
    private var scheduled = false
    /// Touched on `queue` only.
    private var connection: PostgresConnection?

    private final class Entry: @unchecked Sendable {
        let batch: JournalBatch
        let partition: String
        let epoch: Int64
        let schema: String?
        var result: Result<Bool, any Error> = .failure(PostgresStoreError.unavailable("the group commit did not run"))
        let done = DispatchSemaphore(value: 0)

        init(batch: JournalBatch, partition: String, epoch: Int64, schema: String?) {
            self.batch = batch
            self.partition = partition
            self.epoch = epoch
            self.schema = schema
        }
    }

    /// Commits on a connection of its own to `url`, with `store`'s session settings.
    public init(store: PostgresStore, url: String) {
        var configuration = store.options.connectionConfiguration(url: url)
        configuration.applicationName += " (group commit)"
        configuration.settings["search_path"] = nil
        self.configuration = configuration
    }

    /// Writes `batch` of `partition` (tables in `schema`) if `epoch` is still its owner's, with
    /// whatever other partitions commit meanwhile; returns once durable. False: the epoch had
    /// moved on, nothing was written. Throws what the statement threw (for every partition in it).
    func commit(_ batch: JournalBatch, partition: String, epoch: Int64, schema: String?) throws -> Bool {
        let entry = Entry(batch: batch, partition: partition, epoch: epoch, schema: schema)
        let schedule = lock.withLock { () -> Bool in
            pending.append(entry)
            if scheduled { return false }
            scheduled = true
            return true
        }
        if schedule { queue.async { self.drain() } }
        entry.done.wait()
        return try entry.result.get()
    }

    private func drain() {
        while true {
            let group = lock.withLock { () -> [Entry] in
                defer { pending = [] }
                if pending.isEmpty { scheduled = false }
                return pending
            }
            if group.isEmpty { return }
            run(group)
        }
    }

    private func run(_ group: [Entry]) {
        var arguments: [any PostgresBindable] = []
        var calls: [String] = []
        for entry in group {
            calls.append(PostgresPartitionJournal.applyCall(
                for: entry.batch, partition: entry.partition, epoch: entry.epoch, schema: entry.schema, arguments: &arguments))
        }
        // Its text changes with the set of partitions in the group: a group of several is sent
        // unprepared (a prepared statement per set would be a second round trip each, and fill the
        // cache); one partition alone, the usual round at low load, has a text of its own, prepared.
        let sql = "SELECT " + calls.joined(separator: ", ")
        let prepare = group.count == 1
        do {
            // A connection the server closed while idle says so before anything is sent: a new one.
            if let c = connection, c.receivedWhileIdle() || !c.isAliveAfterIdling() { connection = nil }
            let c = try connection ?? PostgresConnection(configuration: configuration)
            connection = c
            let held: [Bool] = try c.queryOne(sql, arguments, prepare: prepare) { (row) throws -> [Bool] in
                try group.indices.map { try row.bool(Int32($0)) }
            } ?? []
            for (i, entry) in group.enumerated() { entry.result = .success(i < held.count && held[i]) }
        } catch {
            if (error as? PostgresError)?.meansUnavailable == true { connection = nil }
            for entry in group { entry.result = .failure(error) }
        }
        for entry in group { entry.done.signal() }
    }
}
