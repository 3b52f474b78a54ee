import Dispatch
import Foundation
import Logging
import RPC
import SessionCore
import SessionState
import SessionStorage
import Synchronization

/// The embedded store's tenants: each in a SQLite database and journal of its own
/// (`DATA_DIR/tenants/<id>/`; the default tenant's are the main ones in `DATA_DIR`), each served
/// here by a partition owner of its own. No leases: one process owns the data directory.
final class SQLiteTenants: TenantHost, @unchecked Sendable {
    private let dataDirectory: String
    private let main: SQLiteStore
    private let storeOptions: SQLiteStore.Options
    private let syncs: Bool
    private let allowEmpty: Bool
    private let backend: SessionBackend
    private let gate: GatedStore
    private let logger: Logger
    /// Serializes opening, serving and stopping (rare, and each may block).
    private let lock = NSLock()
    private var opened: [String: (store: SQLiteStore, journal: JournaledSQLiteStore?)] = [:]

    init(dataDirectory: String, main: SQLiteStore, storeOptions: SQLiteStore.Options, syncs: Bool, allowEmpty: Bool,
         backend: SessionBackend, gate: GatedStore, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.main = main
        self.storeOptions = storeOptions
        self.syncs = syncs
        self.allowEmpty = allowEmpty
        self.backend = backend
        self.gate = gate
        self.logger = logger
    }

    static func directory(forTenant id: String, in dataDirectory: String) -> String {
        id == APIToken.defaultTenant ? dataDirectory : ((dataDirectory as NSString).appendingPathComponent("tenants") as NSString).appendingPathComponent(id)
    }

    /// The tenants' journals (the default tenant's included), for `setAsideJournal`.
    static func journalDirectories(in dataDirectory: String) -> [String] {
        let root = (dataDirectory as NSString).appendingPathComponent("tenants")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return [dataDirectory] + names.sorted().map { (root as NSString).appendingPathComponent($0) }
    }

    func prepare(tenant id: String) throws {
        lock.lock()
        defer { lock.unlock() }
        _ = try store(id, creating: true)
    }

    /// The tenant's store, opened once. `creating`: a new tenant (an empty database is expected);
    /// otherwise a registered tenant whose database went missing is refused like the main one.
    private func store(_ id: String, creating: Bool) throws -> SQLiteStore {
        if id == APIToken.defaultTenant { return main }
        if let open = opened[id] { return open.store }
        let directory = Self.directory(forTenant: id, in: dataDirectory)
        try SessionDaemon.makeDirectory((directory as NSString).deletingLastPathComponent)
        try SessionDaemon.makeDirectory(directory)
        let path = (directory as NSString).appendingPathComponent("sessions.sqlite")
        if !creating {
            switch SQLiteStore.inspect(path: path) {
            case .healthy: break
            case .damaged(let why):
                throw SessionDaemonStartupError(.dataRefused, "refusing to start: the database of tenant \(id), \(path), is damaged (\(why)); restore it from a backup")
            case .missing, .empty, .noSchema:
                guard allowEmpty else {
                    throw SessionDaemonStartupError(.dataRefused, "refusing to start: tenant \(id) is registered but its database \(path) is missing or empty; restore it, or start with --allow-empty-store to begin it empty")
                }
                logger.warning("tenant \(id)'s database is missing or empty; starting it empty (--allow-empty-store)")
                _ = JournaledSQLiteStore.setAsideJournal(in: directory)
            }
        }
        let store = try SQLiteStore(path: path, options: storeOptions)
        opened[id] = (store, nil)
        return store
    }

    func serve(_ tenant: TenantRecord) throws {
        try serve(tenant, creating: true)
    }

    /// At start: every registered tenant, the disabled ones marked so.
    func serveRegistered(_ tenants: [TenantRecord]) throws {
        for tenant in tenants {
            if tenant.isEnabled { try serve(tenant, creating: false) } else { backend.markDisabled(tenant.id, true) }
        }
    }

    private func serve(_ tenant: TenantRecord, creating: Bool) throws {
        lock.lock()
        defer { lock.unlock() }
        guard backend.partition(tenant: tenant.id) == nil else { return }
        let store = try self.store(tenant.id, creating: creating)
        let directory = Self.directory(forTenant: tenant.id, in: dataDirectory)
        // Batches are durable in the journal files; the tables follow in the background.
        let journaled = JournaledSQLiteStore(store: store, directory: directory, syncs: syncs)
        let (gate, logger) = (self.gate, self.logger)
        journaled.onFailure { error in
            // A damaged database closes the gate (NOT_SERVING); any other failure is logged.
            if StoreErrorKind.of(error) != .damaged {
                logger.error("the journal failed; writes are refused until a restart", metadata: ["tenant": "\(tenant.id)", "error": "\(error)"])
            }
            _ = gate.failure(error)
        }
        let partition = try makePartition(tenant: tenant.id, journal: GatedJournal(journaled, gate: gate), backend: backend, logger: logger)
        opened[tenant.id] = (store, journaled)
        backend.attach(partition)
    }

    func stop(tenant id: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let partition = backend.detach(tenant: id, disabled: true) else { return }
        partition.stop()
        flush(id)
    }

    /// After the last call: every partition stopped and written to its tables, every WAL
    /// checkpointed, so each `sessions.sqlite` alone holds its tenant after a clean stop.
    func closeAll() {
        lock.lock()
        defer { lock.unlock() }
        for partition in backend.partitions { partition.owner.stop() }
        for id in opened.keys.sorted() { flush(id) }
        if opened[APIToken.defaultTenant] == nil { checkpoint(main, "default") }
    }

    private func flush(_ id: String) {
        guard let open = opened[id] else { return }
        if let journal = open.journal {
            do { try journal.flush() } catch {
                logger.warning("writing the journal to the tables at shutdown failed; it is replayed at the next start", metadata: ["tenant": "\(id)", "error": "\(error)"])
            }
        }
        checkpoint(open.store, id)
    }

    private func checkpoint(_ store: SQLiteStore, _ id: String) {
        do { try store.checkpoint() } catch {
            logger.warning("WAL checkpoint at shutdown failed", metadata: ["tenant": "\(id)", "error": "\(error)"])
        }
    }
}

/// A tenant's partition owner over `journal`, its durable events fed to the tenant's watchers.
func makePartition(tenant: String, journal: any PartitionJournal, backend: SessionBackend, logger: Logger) throws -> TenantPartition {
    let hub = EventHub()
    let clock = backend.clock
    let owner = try PartitionOwner(
        journal: journal, label: tenant, now: { clock.now() },
        onDurable: { batch in hub.publish(batch.events) },
        onTimerError: { error in logger.warning("timer failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"]) })
    return TenantPartition(tenant: tenant, owner: owner, hub: hub)
}

/// PostgreSQL's tenants: each in a schema of its own (the default tenant's in the main one),
/// each owned by one instance at a time through its own `PostgresPartitionJournal` (lock
/// connection, fence, lease). An instance serves the tenants it owns and forwards the others'
/// calls to their owners. Every 100 ms, up to its share, it tries to take the tenants whose lock
/// nobody holds (one read of `pg_locks` says which);
/// every second it reads the registry again and says it is alive (`instances`), and the share is
/// the enabled tenants divided by the live instances, rounded up. An instance over its share (one
/// joined) gives one tenant up per second, which one under its share takes: tenants spread evenly
/// (`TenantSpread`).
final class PostgresTenants: TenantHost, @unchecked Sendable {
    private let url: String
    private let main: PostgresStore
    private let storeOptions: PostgresStore.Options
    private let lease: Duration
    private let backend: SessionBackend
    private let gate: GatedStore
    private let routing: PartitionRouting
    private let logger: Logger
    private let advertisedAddress: @Sendable () -> String
    private let forwardingTLS: RPCClientTLS?
    private let lock = NSLock()
    private var slots: [String: Slot] = [:]
    /// One commit per round for every tenant owned here (see `PostgresGroupCommitter`).
    private let committer: PostgresGroupCommitter
    /// One connection for every tenant's lock tries (not one per tenant).
    private let candidates = PostgresLockCandidate()
    private var ticks = 0
    private var failing = false
    /// This instance's share of the tenants, from the registry's last read.
    private var spread = TenantSpread()
    /// Tenants this instance gave up, and the tick until which it leaves them to the others.
    private var handedOver: [String: Int] = [:]
    /// Ticks (100 ms) a tenant given up is left to the others before this instance may take it back.
    static let handOverCooldownTicks = 30
    /// An instance is live while its last heartbeat is this recent.
    private var liveWindow: Duration { max(lease, .seconds(3)) }

    private struct Slot {
        let journal: PostgresPartitionJournal
        var enabled: Bool
    }

    init(url: String, main: PostgresStore, storeOptions: PostgresStore.Options, lease: Duration, backend: SessionBackend, gate: GatedStore,
         routing: PartitionRouting, logger: Logger, forwardingTLS: RPCClientTLS?,
         advertisedAddress: @escaping @Sendable () -> String) {
        self.url = url
        self.main = main
        self.storeOptions = storeOptions
        self.lease = lease
        self.backend = backend
        self.gate = gate
        self.routing = routing
        self.logger = logger
        self.forwardingTLS = forwardingTLS
        self.advertisedAddress = advertisedAddress
        self.committer = PostgresGroupCommitter(store: main, url: url)
    }

    /// Opens (creating if needed) the tenant's schema and its journal.
    private func slot(_ id: String) throws -> Slot {
        if let slot = slots[id] { return slot }
        let store: PostgresStore
        if id == APIToken.defaultTenant {
            store = main
        } else {
            var options = storeOptions
            options.schema = PostgresStore.Options.schema(forTenant: id)
            // A tenant's store is read only for what its owner's memory does not hold (its writes
            // go through the journal): one reader, opened when first needed; the connection its
            // migrations ran on is closed (a standby never needs one).
            options.writerConnections = 1
            options.readerConnections = 1
            store = try PostgresStore(url: url, options: options)
            store.closeIdleConnections()
        }
        let slot = Slot(journal: try journal(for: id, store: store), enabled: false)
        slots[id] = slot
        return slot
    }

    /// A journal for the tenant (its lock not taken yet), told what to do when it loses the tenant.
    private func journal(for id: String, store: PostgresStore) throws -> PostgresPartitionJournal {
        let journal = try PostgresPartitionJournal(store: store, url: url, lease: lease, partition: id, candidates: candidates)
        journal.useGroupCommit(committer)
        journal.onLost { [weak self, weak journal] reason in
            guard let self, let journal else { return }
            self.lost(tenant: id, journal: journal, reason: reason)
        }
        return journal
    }

    /// The tenant's lock went with its connection, or another owner's epoch fenced a batch:
    /// another instance may own it now, so this one must not write it again. Only this tenant is
    /// given up: its partition (memory that may hold changes of unknown outcome) is stopped and
    /// dropped, and a fresh journal takes its place, so that nothing the old partition still has in
    /// flight can ever commit under a later ownership. The tenant is then like any other this
    /// instance does not own: its calls are forwarded to its owner, and if nobody took it, this
    /// instance takes it again (loading it from the database) on a later tick.
    private func lost(tenant id: String, journal: PostgresPartitionJournal, reason: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let slot = slots[id], slot.journal === journal else { return }
        logger.error("lost a tenant: its partition is stopped here; its calls go to its owner", metadata: [
            "tenant": "\(id)", "reason": "\(reason)",
        ])
        backend.detach(tenant: id)?.stop()
        journal.release()
        backend.tenantsLost.add(1, ordering: .relaxed)
        do {
            slots[id] = Slot(journal: try self.journal(for: id, store: journal.store), enabled: slot.enabled)
        } catch {
            // Only a bad URL fails here, and that failed at the start already.
            slots[id] = nil
            logger.error("cannot make a new journal for a lost tenant", metadata: ["tenant": "\(id)", "error": "\(error)"])
        }
    }

    func prepare(tenant id: String) throws {
        lock.lock()
        defer { lock.unlock() }
        _ = try slot(id)
    }

    func serve(_ tenant: TenantRecord) throws {
        lock.lock()
        defer { lock.unlock() }
        let slot = try enable(tenant.id)
        recomputeShare()
        // Created or enabled through this instance: served here at once, even over the share (its
        // first calls should not find it unowned); the spreading hands it on later if need be.
        _ = try take(tenant.id, slot, overShare: true)
    }

    /// The tenant's slot, opened if need be, marked to be served.
    private func enable(_ id: String) throws -> Slot {
        var slot = try self.slot(id)
        slot.enabled = true
        slots[id] = slot
        return slot
    }

    /// The share follows the enabled tenants this instance knows of.
    private func recomputeShare() {
        spread.enabled = slots.values.filter(\.enabled).count
    }

    /// At start: every registered tenant this instance can take now; the others are tried later.
    func serveRegistered(_ tenants: [TenantRecord]) throws {
        lock.lock()
        defer { lock.unlock() }
        for tenant in tenants {
            guard tenant.isEnabled else { backend.markDisabled(tenant.id, true); continue }
            let slot = try enable(tenant.id)
            if try !take(tenant.id, slot) { try? routing.point(tenant: tenant.id, to: ownerAddress(of: tenant.id, slot), tls: forwardingTLS) }
        }
    }

    func stop(tenant id: String) {
        lock.lock()
        defer { lock.unlock() }
        slots[id]?.enabled = false
        release(id)
    }

    /// Gives the tenant up here: its partition stopped, its lock released at once.
    private func release(_ id: String, disabled: Bool = true) {
        backend.detach(tenant: id, disabled: disabled)?.stop()
        slots[id]?.journal.release()
    }

    /// Takes the tenant if nobody holds it and this instance is under its share; true when this
    /// instance owns it now.
    private func take(_ id: String, _ slot: Slot, overShare: Bool = false) throws -> Bool {
        if backend.partition(tenant: id) != nil { return true }
        if !overShare, let until = handedOver[id], ticks < until { return false }
        guard overShare || backend.partitions.count < spread.share else { return false }
        backend.lockTries.add(1, ordering: .relaxed)
        guard try slot.journal.tryAcquire() else { return false }
        handedOver[id] = nil
        do {
            try becomeOwner(id, slot.journal)
        } catch {
            // Loading failed after taking the lock: give the tenant back rather than hold it unserved.
            slot.journal.release()
            throw error
        }
        return true
    }

    /// Loads the tenant from the database (everything every earlier owner committed), serves it
    /// from memory and tells the other instances where.
    private func becomeOwner(_ id: String, _ journal: PostgresPartitionJournal) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        try backend.clock.loadPersistedState(from: gate)
        // Advertised first: a later owner's reconnection sees that this one took over.
        let address = advertisedAddress()
        try journal.advertise(address: address, now: Int64(Date().timeIntervalSince1970 * 1000))
        let partition = try makePartition(tenant: id, journal: GatedJournal(journal, gate: gate), backend: backend, logger: logger)
        backend.attach(partition)
        routing.forget(tenant: id)
        logger.info("owning the partition of a tenant", metadata: [
            "tenant": "\(id)", "advertised": "\(address)", "load_ms": "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)",
        ])
    }

    /// One turn of the background loop (every 100 ms).
    func tick() {
        guard !routing.isStopping else { return }
        lock.lock()
        defer { lock.unlock() }
        ticks += 1
        do {
            if ticks % 10 == 1 { try refreshRegistry() }
            if ticks % 10 == 6 { handOverSurplus() }
            let unowned = slots.keys.sorted().filter { id in slots[id]!.enabled && backend.partition(tenant: id) == nil }
            // One look at the held locks, then a try only for the free ones (take tries nothing
            // at or over the share).
            let held = unowned.isEmpty || backend.partitions.count >= spread.share ? [] : try main.heldPartitionLocks()
            var lookUp: [(id: String, slot: Slot)] = []
            for id in unowned {
                guard let slot = slots[id] else { continue }
                let free = !held.contains(PostgresPartitionJournal.lockKey(partition: slot.journal.partition))
                if try !(free && take(id, slot)), !routing.knowsOwner(of: id) || ticks % 10 == 0 {
                    lookUp.append((id, slot))
                }
            }
            // Where the tenants served elsewhere are: one statement for all of them.
            let owners = try main.partitionOwnerAddresses(lookUp.map { ($0.slot.journal.store.options.schema, $0.slot.journal.partition) })
            for (id, slot) in lookUp {
                try routing.point(tenant: id, to: owners[slot.journal.partition], tls: forwardingTLS)
            }
            if failing { failing = false; logger.info("tenants: the database answers again") }
        } catch {
            // Said once per outage, not ten times a second.
            if !failing {
                failing = true
                logger.warning("tenants: cannot reach the database or load a tenant", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Over its share (an instance joined): gives up one tenant, at once (no lease to wait for),
    /// for an instance under its share to take. Its calls meanwhile answer UNAVAILABLE, briefly.
    private func handOverSurplus() {
        let owned = backend.partitions
        guard spread.shouldHandOver(owned: owned.count), let last = owned.last else { return }
        spread.handedOver()
        logger.info("over this instance's share of tenants: handing one over", metadata: [
            "tenant": "\(last.tenant)", "owned": "\(owned.count)", "share": "\(spread.share)",
        ])
        release(last.tenant, disabled: false)
        handedOver[last.tenant] = ticks + Self.handOverCooldownTicks
    }

    /// Where the tenant's owner advertised itself, read through the main store (a standby keeps no
    /// connection per tenant).
    private func ownerAddress(of id: String, _ slot: Slot) throws -> String? {
        try main.partitionOwnerAddress(schema: slot.journal.store.options.schema, partition: id)
    }

    /// Tenants created, disabled or enabled through any instance; this instance's heartbeat.
    private func refreshRegistry() throws {
        let tenants = try main.tenants()
        let live = try main.heartbeat(instance: advertisedAddress(), owned: backend.partitions.count, window: liveWindow)
        defer {
            spread.read(liveInstances: live.count, fewestOwnedByOthers: live.fewestOwnedByOthers,
                        enabled: slots.values.filter(\.enabled).count)
        }
        for tenant in tenants {
            if tenant.isEnabled {
                if slots[tenant.id]?.enabled != true {
                    _ = try enable(tenant.id)
                    backend.markDisabled(tenant.id, false)
                }
            } else {
                backend.markDisabled(tenant.id, true)
                if slots[tenant.id]?.enabled == true || backend.partition(tenant: tenant.id) != nil {
                    slots[tenant.id]?.enabled = false
                    release(tenant.id)
                }
            }
        }
    }

    /// A clean stop: every tenant given up at once, so the next owners need not wait for leases,
    /// and this instance no longer counted among the live ones.
    func releaseAll() {
        lock.lock()
        defer { lock.unlock() }
        for partition in backend.partitions { partition.owner.stop() }
        for slot in slots.values { slot.journal.release() }
        try? main.removeInstance(advertisedAddress())
    }

    /// True while this instance holds some tenant's lock (loading it included).
    var ownsAny: Bool { lock.withLock { slots.values.contains { $0.journal.isOwner } } }
}
