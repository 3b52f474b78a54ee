import RPC
import SessionAPI
import SessionCore

// Conversions between the domain (SessionCore) and the wire API (SessionsV1).
// Enums map by their proto names, which both sides share.

extension SessionsV1.ChannelType {
    init(_ d: SessionCore.ChannelType) { self = .init(protoName: d.rawValue)! }
    func domain() throws(RPCError) -> SessionCore.ChannelType {
        guard let d = SessionCore.ChannelType(rawValue: protoName) else {
            throw RPCError(.invalidArgument, "channel type is required (one of \(SessionCore.ChannelType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return d
    }
}

extension SessionsV1.CapacityModel {
    init(_ d: SessionCore.CapacityModel) { self = .init(protoName: d.rawValue)! }
    /// UNSPECIFIED means tab-based.
    func domain() -> SessionCore.CapacityModel { SessionCore.CapacityModel(rawValue: protoName) ?? .tabBased }
}

extension SessionsV1.SessionStatus {
    init(_ d: SessionCore.SessionStatus?) { self = d.flatMap { .init(protoName: $0.rawValue) } ?? .unspecified }
    /// nil for UNSPECIFIED (no filter).
    func domain() -> SessionCore.SessionStatus? { SessionCore.SessionStatus(rawValue: protoName) }
}

extension SessionsV1.Presence {
    init(_ d: SessionCore.Presence) { self = .init(protoName: d.rawValue)! }
    func domain() -> SessionCore.Presence? { SessionCore.Presence(rawValue: protoName) }
}

extension SessionsV1.Permission {
    init(_ d: SessionCore.Permission) { self = .init(protoName: d.rawValue)! }
    func domain() throws(RPCError) -> SessionCore.Permission {
        guard let d = SessionCore.Permission(rawValue: protoName) else {
            throw RPCError(.invalidArgument, "permission is required (one of \(SessionCore.Permission.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return d
    }
}

extension SessionsV1.TransitionReason {
    init(_ d: SessionCore.TransitionReason?) { self = d.flatMap { .init(protoName: $0.rawValue) } ?? .unspecified }
}

extension SessionsV1.Actor {
    init(_ d: SessionCore.Actor) {
        self.init()
        switch d.kind {
        case .service: kind = .actorService
        case .rep: kind = .actorRep
        case .admin: kind = .actorAdmin
        case .system: kind = .actorSystem
        }
        id = d.id
    }
}

extension SessionsV1.Channel {
    init(_ d: SessionCore.Channel) {
        self.init()
        id = d.id
        type = .init(d.type)
        capacityModel = .init(d.capacityModel)
        capacityWeight = Int32(d.capacityWeight)
        customerInactivityTimeoutMs = d.customerInactivityTimeout?.value ?? 0
        inactiveAutoEndAfterMs = d.inactiveAutoEndAfter.value
        inactivateActionHidden = !d.inactivateActionVisible
    }

    func domain() throws(RPCError) -> SessionCore.Channel {
        SessionCore.Channel(
            id: id, type: try type.domain(), capacityModel: capacityModel.domain(),
            capacityWeight: capacityWeight == 0 ? 1 : Int(capacityWeight),
            customerInactivityTimeout: customerInactivityTimeoutMs == 0 ? nil : Milliseconds(customerInactivityTimeoutMs),
            inactiveAutoEndAfter: inactiveAutoEndAfterMs == 0 ? SessionCore.Channel.defaultInactiveAutoEndAfter : Milliseconds(inactiveAutoEndAfterMs),
            inactivateActionVisible: !inactivateActionHidden)
    }
}

extension SessionsV1.Rep {
    init(_ d: SessionCore.Rep) {
        self.init()
        id = d.id
        displayName = d.displayName
        capacity = Int32(d.capacity)
        presence = .init(d.presence)
        permissions = d.permissions.sorted { $0.rawValue < $1.rawValue }.map(SessionsV1.Permission.init)
        usedCapacity = Int32(d.usedCapacity)
        idleSinceMs = d.idleSince.millisecondsSinceEpoch
    }
}

extension SessionsV1.Session {
    init(_ d: SessionCore.Session) {
        self.init()
        id = d.id
        conversationId = d.conversationId
        channelId = d.channelId
        status = .init(d.status)
        repId = d.repId ?? ""
        createdAtMs = d.createdAt.millisecondsSinceEpoch
        updatedAtMs = d.updatedAt.millisecondsSinceEpoch
        queuedAtMs = d.queuedAt?.millisecondsSinceEpoch ?? 0
        inactivityDeadlineMs = d.inactivityDeadline?.millisecondsSinceEpoch ?? 0
        autoEndDeadlineMs = d.autoEndDeadline?.millisecondsSinceEpoch ?? 0
        endReason = .init(d.endReason)
        version = d.version
    }
}

extension SessionsV1.Event {
    init(_ d: SessionCore.Event) {
        self.init()
        cursor = d.cursor
        sessionId = d.sessionId
        sequence = d.sequence
        timeMs = d.time.millisecondsSinceEpoch
        actor = SessionsV1.Actor(d.actor)
        fromStatus = .init(d.from)
        toStatus = .init(d.to)
        repId = d.repId ?? ""
        reason = .init(d.reason)
    }
}

extension SessionsV1.SessionResponse {
    init(_ outcome: SessionOutcome) {
        self.init()
        session = SessionsV1.Session(outcome.session)
        replayed = outcome.isDuplicate
    }

    init(_ session: SessionCore.Session) {
        self.init()
        self.session = SessionsV1.Session(session)
    }
}

/// The text of an optional first message: an empty id means none.
func incomingMessage(id: String, text: String) -> IncomingMessage? {
    id.isEmpty && text.isEmpty ? nil : IncomingMessage(messageId: id, text: text)
}
