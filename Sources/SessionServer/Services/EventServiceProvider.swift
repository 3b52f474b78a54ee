public import RPC
public import SessionAPI
import SessionCore

/// `sessions.v1.EventService`: the transition log, listed or watched live.
public struct EventServiceProvider: SessionsV1.EventService.ServiceProtocol {
    let backend: SessionBackend
    /// Events read from the store per batch while watching.
    static let batchSize = 500
    /// `ListEventsRequest.limit` 0 means 1000 (sessions.proto).
    static let defaultListLimit = 1000

    public init(backend: SessionBackend) { self.backend = backend }

    public func listEvents(request: SessionsV1.ListEventsRequest, context: RPCServerContext) async throws -> SessionsV1.ListEventsResponse {
        try await backend.read(context) { engine, actor, repo in
            var r = SessionsV1.ListEventsResponse()
            r.events = try engine.listEvents(
                sessionId: request.sessionId, afterSequence: request.afterSequence,
                pageSize: request.limit == 0 ? Self.defaultListLimit : Int(request.limit), by: actor, in: repo
            ).map(SessionsV1.Event.init)
            return r
        }
    }

    public func getEventHead(request: SessionsV1.GetEventHeadRequest, context: RPCServerContext) async throws -> SessionsV1.EventHead {
        try await backend.read(context) { engine, actor, repo in
            var head = SessionsV1.EventHead()
            head.cursor = try engine.eventHead(by: actor, in: repo)
            return head
        }
    }

    /// Replays the log after `after_cursor`, then streams new events as they
    /// become durable. With a state owner the events come from memory (the
    /// hub's mailbox) once the watcher has caught up from the store; without
    /// one, a wake-up (a local commit, or a periodic tick for other instances)
    /// makes the watcher read what follows its cursor. Either way nothing is
    /// skipped or repeated: events are emitted in cursor order, each once.
    public func watchEvents(
        request: SessionsV1.WatchEventsRequest, writer: RPCServerStreamWriter<SessionsV1.Event>, context: RPCServerContext
    ) async throws {
        let sessionId = request.sessionId.isEmpty ? nil : request.sessionId
        // Authorize once, up front: a session watch needs read access to that
        // session; the global feed needs a service or admin role.
        let (principal, partition) = try backend.resolve(context)
        try await backend.read(in: partition, as: principal.actor) { engine, actor, repo in
            if let sessionId {
                _ = try engine.getSession(sessionId, by: actor, in: repo)
            } else {
                try engine.requireEventFeedReader(actor)
            }
        }
        // With a state owner, durable events arrive in the watcher's mailbox; the store is read
        // only to catch up (at the start, and after falling behind).
        let live = partition != nil
        let hub = partition?.hub ?? backend.hub
        let (watcher, wakeups, cancel) = hub.subscribe(sessionId: sessionId, tickMillis: live ? nil : 1000)
        context.onCancel(cancel)
        defer { cancel() }
        var cursor = request.afterCursor
        var sequence: Int64 = 0
        var caughtUp = false
        for await _ in wakeups {
            if live && caughtUp {
                if let events = watcher.take() {
                    for event in events where event.cursor > cursor {
                        cursor = event.cursor
                        sequence = max(sequence, event.sequence)
                        try await writer.write(SessionsV1.Event(event))
                    }
                    if Task.isCancelled || context.isCancelled { break }
                    continue
                }
                // The mailbox overflowed: read what was dropped from the store.
            }
            while !Task.isCancelled {
                let batch: [SessionCore.Event]
                let (afterSequence, afterCursor) = (sequence, cursor)
                let read: @Sendable (any SessionRepository) throws -> [SessionCore.Event] = { repo in
                    if let sessionId {
                        return try repo.events(sessionId: sessionId, afterSequence: afterSequence, limit: Self.batchSize)
                    }
                    return try repo.events(afterCursor: afterCursor, limit: Self.batchSize)
                }
                do {
                    // Through the owner: the store's tables may lag its journal by a moment.
                    if let owner = partition?.owner {
                        batch = try await owner.perform(readOnly: true) { state in try read(state) }
                    } else {
                        batch = try backend.store.read { repo in try read(repo) }
                    }
                } catch {
                    throw backend.status(for: error)
                }
                for event in batch {
                    sequence = max(sequence, event.sequence)
                    guard event.cursor > cursor else { continue }
                    cursor = event.cursor
                    try await writer.write(SessionsV1.Event(event))
                }
                if batch.count < Self.batchSize { break }
            }
            if live {
                // Events published while catching up are in the mailbox; older ones were read above.
                caughtUp = true
                watcher.continuation.yield()
            }
            if Task.isCancelled || context.isCancelled { break }
        }
        if hub.isEnded && !context.isCancelled {
            throw RPCError(
                .unavailable,
                "server is shutting down; reconnect (to another instance or after the restart) with after_cursor=\(cursor) to resume")
        }
        throw RPCError(.cancelled, "watch ended")
    }
}
