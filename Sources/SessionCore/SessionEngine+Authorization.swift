/// Authorization rules: who may do what, checked before any status rule.
extension SessionEngine {
    /// Only an admin (or the service itself) may change configuration.
    func requireAdmin(_ actor: Actor, to action: String) throws(DomainError) {
        switch actor.kind {
        case .admin, .system:
            return
        case .service, .rep:
            throw .permissionDenied("role \(actor.kind.rawValue) may not \(action); only an admin may")
        }
    }

    /// Admins, services and the system may read anything; a rep only what `repId` names as itself.
    func requireReader(_ actor: Actor, ofRep repId: String?, to action: String) throws(DomainError) {
        switch actor.kind {
        case .admin, .service, .system:
            return
        case .rep:
            guard let repId, repId == actor.id else {
                throw .permissionDenied("rep \(actor.id) may not \(action); a rep may only read its own data")
            }
        }
    }

    /// A rep may act only on a session it owns; admin and system on any session; a service only where
    /// `serviceAllowed` (the customer's side: ending, reading).
    ///
    /// - Parameter action: completes "may not …", naming the session (for example `"end session ses_1"`).
    func authorize(_ actor: Actor, on session: Session, to action: String, serviceAllowed: Bool) throws(DomainError) {
        switch actor.kind {
        case .admin, .system:
            return
        case .service:
            if !serviceAllowed {
                throw .permissionDenied("role SERVICE may not \(action); only the owning rep or an admin may")
            }
        case .rep:
            guard session.repId == actor.id else {
                let owner = session.repId.map { "it is owned by rep \($0)" } ?? "it has no owning rep"
                throw .permissionDenied("rep \(actor.id) may not \(action); \(owner)")
            }
        }
    }

    /// Only the customer's side (a service), an admin or the system may create sessions and post
    /// customer messages.
    func requireCustomerSide(_ actor: Actor, to action: String) throws(DomainError) {
        if actor.kind == .rep {
            throw .permissionDenied("rep \(actor.id) may not \(action); only a service or an admin may")
        }
    }

    /// When the caller is a rep, it must hold the permissions of the session's channel.
    func requireChannelPermissions(of actor: Actor, on channel: Channel, in repo: some SessionRepository) throws {
        guard actor.kind == .rep else { return }
        let rep = try requireRep(actor.id, in: repo)
        try requirePermissions(of: rep, on: channel)
    }

    /// `rep` must hold the permissions of `channel` (PERMISSION_DENIED naming the missing ones).
    func requirePermissions(of rep: Rep, on channel: Channel) throws(DomainError) {
        let missing = rep.missingPermissions(for: channel.family)
        guard !missing.isEmpty else { return }
        let names = missing.map(\.rawValue)
        let list = names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + names.last!
        let noun = names.count == 1 ? "permission" : "permissions"
        throw .permissionDenied("rep \(rep.id) lacks the \(list) \(noun) required on \(channel.type.rawValue) channels")
    }
}
