public import Logging
import RPC
import SessionCore
import SessionStorage

/// What every domain service shares: the store, the clock, authentication
/// and the event wake-ups; and the one place where errors become statuses.
public final class SessionBackend: Sendable {
    public let store: any SessionStore
    public let clock: ServerClock
    public let hub: EventHub
    public let auth: TokenAuthenticator
    let logger: Logger

    public init(store: any SessionStore, clock: ServerClock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.hub = EventHub()
        self.auth = TokenAuthenticator(store: store)
        self.logger = logger
    }

    /// Authenticates, then runs `body` in one write transaction with a fresh
    /// engine and the current time; wakes event watchers after the commit.
    func write<T>(
        _ context: RPCServerContext,
        _ body: (inout SessionEngine, SessionCore.Actor, Timestamp, inout any SessionRepository) throws -> T
    ) throws(RPCError) -> T {
        let principal = try auth.authenticate(context)
        return try write(as: principal.actor, body)
    }

    /// Runs `body` in one write transaction as `actor` (also used by the timer sweeper).
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

    /// Authenticates, then runs `body` in a read-only snapshot.
    func read<T>(
        _ context: RPCServerContext,
        _ body: (SessionEngine, SessionCore.Actor, any SessionRepository) throws -> T
    ) throws(RPCError) -> T {
        let principal = try auth.authenticate(context)
        do {
            return try store.read { repo in try body(SessionEngine(), principal.actor, repo) }
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
