import Foundation
import SessionCore
import Testing

@testable import SessionStorage

/// Shared values and helpers for the storage tests.
enum Fixtures {
    static let t0 = Timestamp(millisecondsSinceEpoch: 1_700_000_000_000)

    static func time(_ offsetMilliseconds: Int64) -> Timestamp {
        t0 + Milliseconds(offsetMilliseconds)
    }

    /// A channel with every optional field set and non-default values.
    static func fullChannel(_ id: String = "web-eu") -> Channel {
        Channel(
            id: id, type: .enhancedWebChatV2, capacityModel: .statusBased, capacityWeight: 3,
            customerInactivityTimeout: .minutes(7), inactiveAutoEndAfter: .hours(5), inactivateActionVisible: false)
    }

    /// A channel with every optional field nil.
    static func plainChannel(_ id: String = "sms-us") -> Channel {
        Channel(id: id, type: .standardSMS)
    }

    static func rep(
        _ id: String, presence: Presence = .available, permissions: Set<Permission> = Set(Permission.allCases),
        capacity: Int = 4, used: Int = 0, idleSince: Timestamp = t0
    ) -> Rep {
        Rep(
            id: id, displayName: "Rep \(id) — Zoë", capacity: capacity, presence: presence, permissions: permissions,
            usedCapacity: used, idleSince: idleSince)
    }

    /// A session with every optional field set.
    static func fullSession(_ id: String, conversation: String, channel: String, rep: String) -> Session {
        Session(
            id: id, conversationId: conversation, channelId: channel, status: .active, repId: rep,
            createdAt: time(1), updatedAt: time(2), queuedAt: time(3), inactivityDeadline: time(4),
            autoEndDeadline: time(5), awaitingCustomerSince: time(6), heldCapacity: 3, endReason: .autoEnded,
            version: 7)
    }

    /// A session with every optional field nil.
    static func plainSession(
        _ id: String, conversation: String, channel: String, status: SessionStatus = .waiting
    ) -> Session {
        Session(id: id, conversationId: conversation, channelId: channel, status: status, createdAt: t0, updatedAt: t0)
    }

    static func event(_ session: String, at offset: Int64 = 0, from: SessionStatus? = nil, to: SessionStatus = .waiting)
        -> Event
    {
        Event(
            sessionId: session, time: time(offset), actor: .service("bridge"), from: from, to: to, repId: nil,
            reason: .created)
    }
}

/// A store in a fresh temporary directory, removed afterwards.
func withStore<T>(
    durability: SQLiteStore.Options.Durability = .processCrash,
    _ body: (SQLiteStore, TemporaryDirectory) throws -> T
) throws -> T {
    try TemporaryDirectory.with { directory in
        var options = SQLiteStore.Options()
        options.durability = durability
        let store = try SQLiteStore(path: directory.file("sessions.sqlite"), options: options)
        return try body(store, directory)
    }
}

/// Asserts that `body` throws a `DomainError` with `code`; returns its message.
@discardableResult
func expectDomainError(
    _ code: DomainError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> String? {
    do {
        try body()
        Issue.record("expected \(code.rawValue), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as DomainError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error.message
    } catch {
        Issue.record("expected \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
