import Dispatch
public import Logging
import RPC
import ProtoRuntime
import SessionCore
public import SessionState
import SessionStorage
import Synchronization

/// One tenant's partition as this process serves it: its state owner and the watchers of its
/// events. A tenant is the unit of ownership: its own store (database file or PostgreSQL schema),
/// owner, journal and timers, so writes of different tenants never wait for each other.
public final class TenantPartition: Sendable {
    public let tenant: String
    public let owner: PartitionOwner
    /// Watchers of this tenant's events (fed by its owner's durable batches).
    public let hub: EventHub

    public init(tenant: String, owner: PartitionOwner, hub: EventHub) {
        self.tenant = tenant
        self.owner = owner
        self.hub = hub
    }

    /// Ends its watches (they resume elsewhere with their cursor) and stops its owner, which
    /// refuses every later command; returns once no batch is in flight.
    public func stop() {
        hub.endAll()
        owner.stop()
    }
}

/// What every domain service shares: the store, the clock, authentication,
/// the tenants' partitions, and the one place where errors become statuses.
public final class SessionBackend: Sendable {
    /// The main store: tokens, the tenant registry, the clock's settings (and, without
    /// partitions, the default tenant's data on the store-per-call path).
    public let store: any SessionStore
    public let clock: ServerClock
    /// Tenants this instance owned and lost (PostgreSQL: another instance took them over, or the
    /// connection failed during a commit); for /metrics.
    let tenantsLost = Atomic<Int>(0)
    /// Partition lock tries (`pg_try_advisory_lock`) of tenants this instance does not own.
    let lockTries = Atomic<Int>(0)
    /// The store-per-call path's event wake-ups (partitions have their own).
    public let hub: EventHub
    public let auth: TokenAuthenticator
    let logger: Logger
    /// True: domain calls run as one store transaction each (tools and benchmarks), no partitions.
    let servesFromStore: Bool
    private let directory = Mutex(Directory())

    private struct Directory {
        var served: [String: TenantPartition] = [:]
        var disabled: Set<String> = []
    }

    public init(store: any SessionStore, clock: ServerClock, logger: Logger, servesFromStore: Bool = false) {
        self.store = store
        self.clock = clock
        self.hub = EventHub()
        self.auth = TokenAuthenticator(store: store)
        self.logger = logger
        self.servesFromStore = servesFromStore
    }

    // MARK: Partitions

    /// The default tenant's owner, when this process serves it.
    public var owner: PartitionOwner? { partition(tenant: APIToken.defaultTenant)?.owner }

    /// Serves the default tenant from `owner` (tools and tests with one partition).
    public func attach(owner: PartitionOwner) {
        attach(TenantPartition(tenant: APIToken.defaultTenant, owner: owner, hub: EventHub()))
    }

    /// From now on the tenant's calls run on `partition` (replacing none: the first one counts).
    public func attach(_ partition: TenantPartition) {
        directory.withLock { d in
            if d.served[partition.tenant] == nil { d.served[partition.tenant] = partition }
            d.disabled.remove(partition.tenant)
        }
    }

    /// Stops serving `tenant` here and returns its partition (the caller stops it).
    @discardableResult
    public func detach(tenant: String, disabled: Bool = false) -> TenantPartition? {
        directory.withLock { d in
            if disabled { d.disabled.insert(tenant) }
            return d.served.removeValue(forKey: tenant)
        }
    }

    /// Marks a tenant disabled (its calls are refused) or not.
    public func markDisabled(_ tenant: String, _ isDisabled: Bool) {
        directory.withLock { d in
            if isDisabled { d.disabled.insert(tenant) } else { d.disabled.remove(tenant) }
        }
    }

    public func partition(tenant: String) -> TenantPartition? { directory.withLock { $0.served[tenant] } }

    /// Every partition served here, ordered by tenant.
    public var partitions: [TenantPartition] {
        directory.withLock { d in d.served.values.sorted { $0.tenant < $1.tenant } }
    }

    /// Authenticates the call: a known, unrevoked token of an enabled tenant (or an operator's).
    func authenticate(_ context: RPCServerContext) throws(RPCError) -> Principal {
        try authenticate(metadata: context.metadata)
    }

    /// `authenticate(_:)` from a call's metadata.
    func authenticate(metadata: RPCMetadata) throws(RPCError) -> Principal {
        try authenticated(metadata).principal
    }

    /// The token's principal and, for a tenant's token, what this process serves of the tenant:
    /// one look at the directory per call.
    func authenticated(_ metadata: RPCMetadata) throws(RPCError) -> (principal: Principal, served: TenantPartition?) {
        let principal = try auth.authenticate(metadata: metadata)
        guard let tenant = principal.token.tenantId else { return (principal, nil) }
        let (served, isDisabled) = directory.withLock { d in (d.served[tenant], d.disabled.contains(tenant)) }
        if isDisabled { throw RPCError(.permissionDenied, "tenant \(tenant) is disabled") }
        return (principal, served)
    }

    /// Authenticates the call and finds its tenant's partition (nil on the store-per-call path).
    func resolve(_ context: RPCServerContext) throws(RPCError) -> (principal: Principal, partition: TenantPartition?) {
        let (principal, served) = try authenticated(context.metadata)
        guard principal.token.role != .operator, let tenant = principal.token.tenantId else {
            throw RPCError(.permissionDenied, "an OPERATOR token manages tenants (TenantService) only; calls inside a tenant need one of its tokens")
        }
        if servesFromStore { return (principal, nil) }
        guard let served else { throw RPCError(.unavailable, "tenant \(tenant) is not served by this instance now; retry") }
        return (principal, served)
    }

    typealias WriteBody<T> = @Sendable (inout SessionEngine, SessionCore.Actor, Timestamp, inout any SessionRepository) throws -> T
    typealias ReadBody<T> = @Sendable (SessionEngine, SessionCore.Actor, any SessionRepository) throws -> T

    /// Authenticates, then runs `body` as one command: on the tenant's owner (answered once its
    /// changes are durable), or in one store transaction on a thread that may block (the
    /// store-per-call path). Never blocks the calling task's thread.
    func write<T: Sendable>(_ context: RPCServerContext, _ body: @escaping WriteBody<T>) async throws(RPCError) -> T {
        let (principal, partition) = try resolve(context)
        let result: Result<T, RPCError> = await withCheckedContinuation { continuation in
            run(in: partition, as: principal.actor, mayLead: false, body) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// `write(_:_:)` for a deferred call: no task and no waiting thread. Authenticates on the
    /// calling (connection) thread, runs `body`, and answers `respond` once durable; `map` builds
    /// the response on the connection's queue.
    func write<T: Sendable, Response: ProtoCMessage>(
        _ context: RPCServerContext, answer respond: RPCResponder<Response>,
        map: @escaping @Sendable (T) throws -> Response, _ body: @escaping WriteBody<T>
    ) {
        let resolved: (principal: Principal, partition: TenantPartition?)
        do { resolved = try resolve(context) } catch { return respond.fail(error) }
        // On the connection's queue: when nothing else of this connection waits behind it (its
        // answer waits for the batch anyway), this thread may write the batch.
        run(in: resolved.partition, as: resolved.principal.actor, mayLead: context.isSoleCall, body) { result in
            switch result {
            case .success(let value): respond.complete { try map(value) }
            case .failure(let error): respond.fail(error)
            }
        }
    }

    /// The one way a write runs: as a command on the partition's owner (completed once durable),
    /// or, without one, in a store transaction on a Dispatch thread (it blocks; never the caller's).
    /// `mayLead`: the caller's thread may write the batch its command starts (`PartitionOwner.perform`).
    private func run<T: Sendable>(
        in partition: TenantPartition?, as actor: SessionCore.Actor, mayLead: Bool, _ body: @escaping WriteBody<T>,
        _ completion: @escaping @Sendable (Result<T, RPCError>) -> Void
    ) {
        guard let owner = partition?.owner else {
            DispatchQueue.global().async {
                do throws(RPCError) { completion(.success(try self.write(as: actor, body))) } catch { completion(.failure(error)) }
            }
            return
        }
        do { try (store as? GatedStore)?.checkUsable() } catch { return completion(.failure(status(for: error))) }
        let clock = self.clock
        owner.perform(mayLead: mayLead, { state in
            var engine = SessionEngine()
            var repo: any SessionRepository = state
            return try body(&engine, actor, clock.now(), &repo)
        }, completion: { result in completion(result.mapError { self.status(for: $0) }) })
    }

    /// Authenticates, then runs `body` as a read: on the tenant's owner (answered once what it saw
    /// is durable), or in a store snapshot.
    func read<T: Sendable>(_ context: RPCServerContext, _ body: @escaping ReadBody<T>) async throws(RPCError) -> T {
        let (principal, partition) = try resolve(context)
        return try await read(in: partition, as: principal.actor, body)
    }

    /// `read(_:_:)` for a resolved caller.
    func read<T: Sendable>(in partition: TenantPartition?, as actor: SessionCore.Actor, _ body: @escaping ReadBody<T>) async throws(RPCError) -> T {
        do {
            if let owner = partition?.owner {
                try (store as? GatedStore)?.checkUsable()
                return try await owner.perform(readOnly: true) { state in try body(SessionEngine(), actor, state) }
            }
            return try await offload { () throws(RPCError) -> T in try self.readBlocking(actor, body) }
        } catch let error as RPCError {
            throw error
        } catch {
            throw status(for: error)
        }
    }

    private func readBlocking<T>(_ actor: SessionCore.Actor, _ body: ReadBody<T>) throws(RPCError) -> T {
        do {
            return try store.read { repo in try body(SessionEngine(), actor, repo) }
        } catch {
            throw status(for: error)
        }
    }

    /// Runs blocking work (a store call) on a Dispatch thread, so no task's thread waits for it.
    func offload<T: Sendable>(_ work: @escaping @Sendable () throws(RPCError) -> T) async throws(RPCError) -> T {
        let result: Result<T, RPCError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(RPCError) { continuation.resume(returning: .success(try work())) } catch { continuation.resume(returning: .failure(error)) }
            }
        }
        return try result.get()
    }

    /// Fires every timer that is due now and returns once the transitions are durable.
    func fireDueTimers(sweeper: TimerSweeper) async throws(RPCError) {
        if !servesFromStore {
            // Every tenant's: the clock is the process's.
            for partition in partitions {
                do { try await partition.owner.fireDueNow() } catch { throw status(for: error) }
            }
            return
        }
        _ = try await offload { () throws(RPCError) -> Int in try sweeper.sweepNow() }
    }

    /// Runs `body` in one store transaction as `actor`, on the calling thread (which may block):
    /// the store-per-call path and its timer sweeper.
    func write<T>(
        as actor: SessionCore.Actor,
        _ body: (inout SessionEngine, SessionCore.Actor, Timestamp, inout any SessionRepository) throws -> T
    ) throws(RPCError) -> T {
        do {
            let result = try store.write { repo in
                var engine = SessionEngine()
                return try body(&engine, actor, clock.now(), &repo)
            }
            hub.notify()
            return result
        } catch {
            throw status(for: error)
        }
    }

    /// Maps any error to the status the caller sees; storage failures are
    /// logged and reported without their internals.
    func status(for error: any Error) -> RPCError {
        switch error {
        case let e as RPCError:
            return e
        case let e as DomainError:
            return RPCError(Self.code(e.code), e.message)
        case let e as GatedStore.NotReady:
            return RPCError(.unavailable, e.message)
        case PartitionStateError.stopped:
            return RPCError(.unavailable, "this tenant is no longer served by this instance (it moved, was disabled, or the server is stopping); retry")
        case PostgresStoreError.unavailable(let reason):
            logger.warning("database unavailable", metadata: ["reason": "\(reason)"])
            return RPCError(.unavailable, "the database is unavailable; retry later")
        case let e as SQLiteError where StoreErrorKind.of(e) == .unavailable:
            // BUSY, LOCKED, IOERR, FULL: the store cannot take the write now.
            logger.warning("database unavailable", metadata: ["error": "\(e)"])
            return RPCError(.unavailable, "the database is unavailable; retry later")
        default:
            logger.error("storage failure", metadata: ["error": "\(error)"])
            return RPCError(.internal, "internal error")
        }
    }

    static func code(_ code: DomainError.Code) -> RPCStatusCode {
        switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .permissionDenied: .permissionDenied
        case .resourceExhausted: .resourceExhausted
        case .aborted: .aborted
        }
    }
}
