/// Rep permissions: grant and revoke (admin), list and check.
extension SessionEngine {
    /// Grants `permission` to a rep (admin only; granting a held permission changes nothing), then
    /// routes: the rep may now take waiting sessions of more channels.
    public func grantPermission(
        _ permission: Permission, to repId: String, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> RepOutcome {
        try requireAdmin(actor, to: "grant permissions")
        var rep = try requireRep(repId, in: repo)
        var changes = ChangeSet()
        if rep.permissions.insert(permission).inserted {
            try save(rep, in: &repo, changes: &changes)
            try route(now: now, in: &repo, changes: &changes)
        }
        return RepOutcome(rep: try requireRep(repId, in: repo), changes: changes)
    }

    /// Revokes `permission` from a rep (admin only; revoking a permission not held changes nothing).
    ///
    /// Sessions the rep already owns stay with it: routing will not give it new ones on affected
    /// channels, and the rep is refused (PERMISSION_DENIED) when it sends, marks inactive or ends on
    /// them; an admin can end or reassign them by taking the rep offline.
    public func revokePermission(
        _ permission: Permission, from repId: String, by actor: Actor, at now: Timestamp, in repo: inout some SessionRepository
    ) throws -> RepOutcome {
        try requireAdmin(actor, to: "revoke permissions")
        var rep = try requireRep(repId, in: repo)
        var changes = ChangeSet()
        if rep.permissions.remove(permission) != nil {
            try save(rep, in: &repo, changes: &changes)
        }
        return RepOutcome(rep: rep, changes: changes)
    }

    /// The permissions a rep holds, in canonical order (admins and services any rep, a rep only itself).
    public func permissions(of repId: String, by actor: Actor, in repo: some SessionRepository) throws -> [Permission] {
        try requireReader(actor, ofRep: repId, to: "read the permissions of rep \(repId)")
        let rep = try requireRep(repId, in: repo)
        return Permission.allCases.filter { rep.permissions.contains($0) }
    }

    /// Whether a rep may send and receive on a channel, and which permissions it lacks
    /// (admins and services any rep, a rep only itself).
    public func checkPermissions(
        repId: String, channelId: String, by actor: Actor, in repo: some SessionRepository
    ) throws -> PermissionCheck {
        try requireReader(actor, ofRep: repId, to: "check the permissions of rep \(repId)")
        let rep = try requireRep(repId, in: repo)
        let channel = try requireChannel(channelId, in: repo)
        return PermissionCheck(repId: repId, channelId: channelId, channelType: channel.type,
                               missing: rep.missingPermissions(for: channel.family))
    }
}
