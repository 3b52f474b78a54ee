/// Checks the bookkeeping invariants of a repository; used by tests after every operation, and usable by
/// an operator tool against a real store.
///
/// Invariants:
/// - a rep's `usedCapacity` equals the sum of `heldCapacity` over its `ACTIVE` sessions;
/// - an `ACTIVE` session has an owner and holds at least 1 unit; no other session holds capacity;
/// - a `WAITING` session has no owner and a `queuedAt`; `NEW` and `INACTIVE` sessions have an owner;
/// - the inactivity countdown exists only on `ACTIVE`, the auto-end deadline only on `INACTIVE`;
/// - a conversation has at most one open session.
public enum CapacityAudit {
    /// Every violation found, as a sentence; empty when the repository is consistent.
    public static func violations(in repo: some SessionRepository) throws -> [String] {
        var problems: [String] = []
        var heldByRep: [String: Int] = [:]
        var openByConversation: [String: String] = [:]
        var after: String?
        while true {
            let batch = try repo.sessions(matching: SessionFilter(), after: after, limit: 500)
            for session in batch {
                switch session.status {
                case .active:
                    if let repId = session.repId {
                        heldByRep[repId, default: 0] += session.heldCapacity
                    } else {
                        problems.append("session \(session.id) is ACTIVE without an owning rep")
                    }
                    if session.heldCapacity < 1 {
                        problems.append("session \(session.id) is ACTIVE but holds \(session.heldCapacity) capacity units")
                    }
                case .new, .waiting, .inactive, .ended:
                    if session.heldCapacity != 0 {
                        problems.append("session \(session.id) is \(session.status.rawValue) but holds \(session.heldCapacity) capacity units")
                    }
                }
                if session.status == .waiting && (session.repId != nil || session.queuedAt == nil) {
                    problems.append("session \(session.id) is WAITING but has an owner or no queue time")
                }
                if (session.status == .new || session.status == .inactive) && session.repId == nil {
                    problems.append("session \(session.id) is \(session.status.rawValue) without an owning rep")
                }
                if session.inactivityDeadline != nil && session.status != .active {
                    problems.append("session \(session.id) is \(session.status.rawValue) but has an inactivity countdown")
                }
                if session.autoEndDeadline != nil && session.status != .inactive {
                    problems.append("session \(session.id) is \(session.status.rawValue) but has an auto-end deadline")
                }
                if session.status.isOpen {
                    if let other = openByConversation[session.conversationId] {
                        problems.append("conversation \(session.conversationId) has two open sessions: \(other) and \(session.id)")
                    }
                    openByConversation[session.conversationId] = session.id
                }
            }
            guard let last = batch.last, batch.count == 500 else { break }
            after = last.id
        }
        var repAfter: String?
        while true {
            let reps = try repo.reps(after: repAfter, limit: 500)
            for rep in reps {
                let held = heldByRep.removeValue(forKey: rep.id) ?? 0
                if rep.usedCapacity != held {
                    problems.append("rep \(rep.id) records \(rep.usedCapacity) used capacity units but its ACTIVE sessions hold \(held)")
                }
            }
            guard let last = reps.last, reps.count == 500 else { break }
            repAfter = last.id
        }
        for (repId, held) in heldByRep.sorted(by: { $0.key < $1.key }) {
            problems.append("ACTIVE sessions hold \(held) capacity units on rep \(repId), which does not exist")
        }
        return problems
    }
}
