import Dispatch
public import Logging
import RPC
import ProtoRuntime
import SessionCore
public import SessionState
import SessionStorage
import Synchronization

/// What every domain service shares: the store, the clock, authentication
/// and the event wake-ups; and the one place where errors become statuses.
public final class SessionBackend: Sendable {
    public let store: any SessionStore
    public let clock: ServerClock
    public let hub: EventHub
    public let auth: TokenAuthenticator
    let logger: Logger
    /// Set once; read by every call (no lock: see GatedStore).
    private let ownerBox = AtomicLazyReference<PartitionOwner>()

    public init(store: any SessionStore, clock: ServerClock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.hub = EventHub()
        self.auth = TokenAuthenticator(store: store)
        self.logger = logger
    }

    /// The state owner, once attached: from then on every domain call runs on it (in memory,
    /// group-committed) instead of a store transaction per call.
    public var owner: PartitionOwner? { ownerBox.load() }

    /// Attaches the state owner; only the first one attached counts.
    public func attach(owner: PartitionOwner) { _ = ownerBox.storeIfNil(owner) }

    typealias WriteBody<T> = @Sendable (inout SessionEngine, SessionCore.Actor, Timestamp, inout any SessionRepository) throws -> T
    typealias ReadBody<T> = @Sendable (SessionEngine, SessionCore.Actor, any SessionRepository) throws -> T

    /// Authenticates, then runs `body` as one command: on the state owner when there is one
    /// (answered once its changes are durable), else in one store transaction on a thread that may
    /// block. Wakes event watchers after the commit. Never blocks the calling task's thread.
    func write<T: Sendable>(_ context: RPCServerContext, _ body: @escaping WriteBody<T>) async throws(RPCError) -> T {
        let principal = try auth.authenticate(context)
        return try await write(as: principal.actor, body)
    }

    /// `write(_:_:)` as `actor`.
    func write<T: Sendable>(as actor: SessionCore.Actor, _ body: @escaping WriteBody<T>) async throws(RPCError) -> T {
        let result: Result<T, RPCError> = await withCheckedContinuation { continuation in
            run(as: actor, body) { continuation.resume(returning: $0) }
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
        let principal: Principal
        do { principal = try auth.authenticate(context) } catch { return respond.fail(error) }
        run(as: principal.actor, body) { result in
            switch result {
            case .success(let value): respond.complete { try map(value) }
            case .failure(let error): respond.fail(error)
            }
        }
    }

    /// The one way a write runs: as a command on the owner (completed once durable), or, without
    /// one, in a store transaction on a Dispatch thread (it blocks; never the caller's thread).
    private func run<T: Sendable>(
        as actor: SessionCore.Actor, _ body: @escaping WriteBody<T>, _ completion: @escaping @Sendable (Result<T, RPCError>) -> Void
    ) {
        guard let owner else {
            DispatchQueue.global().async {
                do throws(RPCError) { completion(.success(try self.write(as: actor, body))) } catch { completion(.failure(error)) }
            }
            return
        }
        do { try (store as? GatedStore)?.checkUsable() } catch { return completion(.failure(status(for: error))) }
        let clock = self.clock
        owner.perform({ state in
            var engine = SessionEngine()
            var repo: any SessionRepository = state
            return try body(&engine, actor, clock.now(), &repo)
        }, completion: { result in completion(result.mapError { self.status(for: $0) }) })
    }

    /// Authenticates, then runs `body` as a read: on the owner (answered once what it saw is
    /// durable), or in a store snapshot.
    func read<T: Sendable>(_ context: RPCServerContext, _ body: @escaping ReadBody<T>) async throws(RPCError) -> T {
        let principal = try auth.authenticate(context)
        do {
            if let owner {
                try (store as? GatedStore)?.checkUsable()
                return try await owner.perform(readOnly: true) { state in try body(SessionEngine(), principal.actor, state) }
            }
            return try await offload { () throws(RPCError) -> T in try self.readBlocking(principal.actor, body) }
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
        if let owner {
            do { try await owner.fireDueNow() } catch { throw status(for: error) }
            return
        }
        _ = try await offload { () throws(RPCError) -> Int in try sweeper.sweepNow() }
    }

    /// Runs `body` in one store transaction as `actor`, on the calling thread (which may block);
    /// the path without a state owner (PostgreSQL) and the store-based timer sweeper.
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
