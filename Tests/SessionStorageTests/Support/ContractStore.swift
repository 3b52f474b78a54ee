import PostgresTestSupport
import Foundation
import SessionCore
import SessionState
import Testing

@testable import SessionStorage

/// The stores the contract suite runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres
    /// A state owner in memory whose batches commit straight to the SQLite tables.
    case owner
    /// A state owner journaled to an append-only file, the tables written behind it (what sessiond runs).
    case journaled

    var testDescription: String { rawValue }
}

/// What the contract tests need from a store: what the server needs (one
/// closure per transaction over `any SessionRepository`, API tokens), plus a
/// way to open the same database again as a restarted server would.
protocol ContractStore: Sendable {
    var kind: StoreKind { get }
    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T
    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T
    /// The cursor of the newest event (0 when there is none).
    func latestEventCursor() throws -> Int64
    func insertToken(_ token: APIToken) throws
    func token(hash: [UInt8]) throws -> APIToken?
    func listTokens() throws -> [APIToken]
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken
    /// A new store on the same database (the old one stays usable).
    func reopened() throws -> any ContractStore
}

struct SQLiteContractStore: ContractStore {
    let store: SQLiteStore
    var kind: StoreKind { .sqlite }

    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try store.write { (repository: SQLiteRepository) throws -> T in
            var erased: any SessionRepository = repository
            return try body(&erased)
        }
    }

    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try store.read { (repository: SQLiteRepository) throws -> T in try body(repository) }
    }

    func latestEventCursor() throws -> Int64 { try store.read { try $0.latestEventCursor() } }
    func insertToken(_ token: APIToken) throws { try store.insertToken(token) }
    func token(hash: [UInt8]) throws -> APIToken? { try store.token(hash: hash) }
    func listTokens() throws -> [APIToken] { try store.listTokens() }
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken { try store.revokeToken(hash: hash, at: time) }

    func reopened() throws -> any ContractStore {
        SQLiteContractStore(store: try SQLiteStore(path: store.path, options: store.options))
    }
}

struct PostgresContractStore: ContractStore {
    let store: PostgresStore
    let url: String
    var kind: StoreKind { .postgres }

    init(url: String, options: PostgresStore.Options = .forTests) throws {
        self.url = url
        store = try PostgresStore(url: url, options: options)
    }

    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try store.write { (repository: PostgresRepository) throws -> T in
            var erased: any SessionRepository = repository
            return try body(&erased)
        }
    }

    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try store.read { (repository: PostgresRepository) throws -> T in try body(repository) }
    }

    func latestEventCursor() throws -> Int64 { try store.read { try $0.latestEventCursor() } }
    func insertToken(_ token: APIToken) throws { try store.insertToken(token) }
    func token(hash: [UInt8]) throws -> APIToken? { try store.token(hash: hash) }
    func listTokens() throws -> [APIToken] { try store.listTokens() }
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken { try store.revokeToken(hash: hash, at: time) }

    func reopened() throws -> any ContractStore {
        try PostgresContractStore(url: url, options: store.options)
    }
}

extension PostgresStore.Options {
    /// Small pools (many tests run side by side) and a patient connect timeout.
    static var forTests: PostgresStore.Options {
        var options = PostgresStore.Options()
        options.writerConnections = 2
        options.readerConnections = 2
        options.connectTimeout = .seconds(30)  // a loaded CI machine can take seconds to accept
        options.lockTimeout = .seconds(20)
        options.applicationName = "session-storage-tests"
        return options
    }
}

/// Runs `body` with a fresh, empty store of `kind`: a SQLite file in a
/// temporary directory, or a new database on the shared test PostgreSQL server.
func withContractStore<T>(_ kind: StoreKind, _ body: (any ContractStore) throws -> T) throws -> T {
    switch kind {
    case .sqlite:
        return try withStore { store, _ in try body(SQLiteContractStore(store: store)) }
    case .postgres:
        return try body(try PostgresContractStore(url: try PostgresTestServer.makeDatabase()))
    case .owner:
        return try withStore { store, _ in try body(try OwnerContractStore(store: store)) }
    case .journaled:
        return try withStore { store, directory in try body(try OwnerContractStore(store: store, journalDirectory: directory.path)) }
    }
}

/// The contract through a ``PartitionOwner``: every write a command on the owner, answered once
/// durable; every read from memory (with the journal's reads behind it).
struct OwnerContractStore: ContractStore {
    let store: SQLiteStore
    let owner: PartitionOwner
    let journalDirectory: String?
    let journaled: JournaledSQLiteStore?
    var kind: StoreKind { journalDirectory == nil ? .owner : .journaled }

    init(store: SQLiteStore, journalDirectory: String? = nil) throws {
        self.store = store
        self.journalDirectory = journalDirectory
        journaled = journalDirectory.map { JournaledSQLiteStore(store: store, directory: $0, syncs: false) }
        owner = try PartitionOwner(journal: journaled ?? store, now: { Timestamp(millisecondsSinceEpoch: 0) })
    }

    func write<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try owner.performAndWait { state in
            var erased: any SessionRepository = state
            return try body(&erased)
        }
    }

    func read<T>(_ body: (any SessionRepository) throws -> T) throws -> T {
        try owner.performAndWait(readOnly: true) { state in try body(state) }
    }

    func latestEventCursor() throws -> Int64 { try owner.performAndWait { $0.headCursor } }
    func insertToken(_ token: APIToken) throws { try store.insertToken(token) }
    func token(hash: [UInt8]) throws -> APIToken? { try store.token(hash: hash) }
    func listTokens() throws -> [APIToken] { try store.listTokens() }
    func revokeToken(hash: [UInt8], at time: Timestamp) throws -> APIToken { try store.revokeToken(hash: hash, at: time) }

    func reopened() throws -> any ContractStore {
        owner.stop()
        try journaled?.flush()  // as at a clean stop: the old store's tables hold everything
        return try OwnerContractStore(store: try SQLiteStore(path: store.path, options: store.options), journalDirectory: journalDirectory)
    }
}

/// Engine scenarios (see EngineParityTests) on any contract store; a restart reopens the database.
struct ContractScenarioStore: ScenarioStore {
    var store: any ContractStore

    mutating func transaction<T>(_ body: (inout any SessionRepository) throws -> T) throws -> T {
        try store.write(body)
    }

    mutating func restart() throws {
        store = try store.reopened()
    }
}
