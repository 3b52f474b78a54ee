import SessionCore
import SessionStorage
import Synchronization

/// The store the services use: empty until the daemon has bound its port and
/// opened the real store (calls meanwhile answer UNAVAILABLE), and closed for
/// good once the database is found damaged at run time.
final class GatedStore: SessionStore {
    /// The store, set once when it opens. Read on every call: a lock here was the hottest
    /// contended lock of the server (every connection thread and the journal thread take it).
    private final class Box: Sendable {
        let store: any SessionStore
        init(_ store: any SessionStore) { self.store = store }
    }
    private let opened = AtomicLazyReference<Box>()
    private let damaged = Atomic<Bool>(false)
    /// Called once, when a call first finds the database damaged.
    private let onDamaged: @Sendable (String) -> Void

    init(onDamaged: @escaping @Sendable (String) -> Void) {
        self.onDamaged = onDamaged
    }

    /// The store is not usable; `message` says why (already fit for a client).
    struct NotReady: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Opens the gate; only the first store attached counts.
    func attach(_ store: any SessionStore) {
        _ = opened.storeIfNil(Box(store))
    }

    /// Refuses every later call; returns `false` if it was already refused (or never open).
    @discardableResult
    func markDamaged(_ reason: String) -> Bool {
        guard opened.load() != nil else { return false }
        return damaged.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    /// The real store, once open (also after it was found damaged).
    var underlying: (any SessionStore)? { opened.load()?.store }

    private func current() throws -> any SessionStore {
        guard let box = opened.load() else { throw NotReady(message: "sessiond is starting; retry shortly") }
        if damaged.load(ordering: .acquiring) {
            throw NotReady(message: "the database is damaged; sessiond refuses calls until an operator restores it")
        }
        return box.store
    }

    /// Runs `call` on the open store; a damaged-database error closes the gate.
    private func guarded<T>(_ call: (any SessionStore) throws -> T) throws -> T {
        let store = try current()
        do {
            return try call(store)
        } catch {
            throw failure(error)
        }
    }

    /// The error to report for a store failure: a damaged database closes the gate.
    func failure(_ error: any Error) -> any Error {
        guard StoreErrorKind.of(error) == .damaged else { return error }
        if markDamaged("\(error)") { onDamaged("\(error)") }
        return NotReady(message: "the database is damaged; sessiond refuses calls until an operator restores it")
    }

    /// Fails fast once the database was found damaged.
    func checkUsable() throws {
        guard opened.load() != nil else { throw NotReady(message: "sessiond is starting; retry shortly") }
        if damaged.load(ordering: .acquiring) {
            throw NotReady(message: "the database is damaged; sessiond refuses calls until an operator restores it")
        }
    }

    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T { try guarded { try $0.write(body) } }
    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T { try guarded { try $0.read(body) } }
    func insertToken(_ token: APIToken) throws { try guarded { try $0.insertToken(token) } }
    func token(hash: [UInt8]) throws -> APIToken? { try guarded { try $0.token(hash: hash) } }
    func listTokens() throws -> [APIToken] { try guarded { try $0.listTokens() } }
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken { try guarded { try $0.revokeToken(hash: hash, at: time) } }
    func tenants() throws -> [TenantRecord] { try guarded { try $0.tenants() } }
    func insertTenant(_ tenant: TenantRecord) throws { try guarded { try $0.insertTenant(tenant) } }
    func setTenantDisabled(_ id: String, at time: Timestamp?) throws -> TenantRecord { try guarded { try $0.setTenantDisabled(id, at: time) } }
}

/// A partition journal behind the gate: a damaged database found while committing or reading
/// closes the gate like any other store call.
final class GatedJournal: PartitionJournal {
    private let journal: any PartitionJournal
    private let gate: GatedStore

    init(_ journal: any PartitionJournal, gate: GatedStore) {
        self.journal = journal
        self.gate = gate
    }

    private func guarded<T>(_ call: () throws -> T) throws -> T {
        try gate.checkUsable()
        do { return try call() } catch { throw gate.failure(error) }
    }

    func loadPartition() throws -> PartitionSnapshot { try guarded { try journal.loadPartition() } }
    func commit(_ batch: JournalBatch) throws { try guarded { try journal.commit(batch) } }
    func readDurable<T>(_ body: (any SessionRepository) throws -> T) throws -> T { try guarded { try journal.readDurable(body) } }
    func lastSequence(sessionId: String) throws -> Int64 { try guarded { try journal.lastSequence(sessionId: sessionId) } }
    func lastSequences(sessionIds: [String]) throws -> [String: Int64] { try guarded { try journal.lastSequences(sessionIds: sessionIds) } }
    var settlesOnCommit: Bool { journal.settlesOnCommit }
    func onSettled(_ handler: @escaping @Sendable ([JournalBatch]) -> Void) { journal.onSettled(handler) }
}
