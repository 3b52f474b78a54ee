/// How an instance decides, from the instance registry, how many tenants it may own and when to
/// give one up: the enabled tenants over the live instances, rounded up, is its share; an instance
/// over it (one joined) gives one up; and while another owns fewer than the rounded-down share,
/// one that owns more gives one up too (5, 5, 3 becomes 5, 4, 4).
///
/// A heartbeat is up to a second old when it is read, so the instance that looks short may already
/// have taken the tenant just given up. Two registry reads in a row since the last hand-over must
/// show it short: on one read, a bench run saw a 5/4 spread become 4/5, the moved tenant's calls
/// refused for nothing while it moved.
struct TenantSpread: Equatable {
    /// Tenants enabled in the registry (as this instance last read it, or enabled through it since).
    var enabled = 0 { didSet { known = true } }
    /// False until the registry was read or a tenant enabled: until then there is no limit (an
    /// instance starting takes every registered tenant it can lock; the spreading hands them on).
    private(set) var known = false
    private(set) var liveInstances = 1
    /// Registry reads in a row, since this instance last gave a tenant up, that showed another
    /// instance under the floor.
    private(set) var shortReads = 0

    /// How many tenants this instance may own (at least one).
    var share: Int { known ? max(1, (enabled + liveInstances - 1) / liveInstances) : Int.max }
    /// The enabled tenants over the live instances, rounded down.
    var floor: Int { known ? enabled / liveInstances : 0 }

    /// What a registry read said: the live instances (this one included) and the fewest tenants
    /// another of them owns (nil: no other is live).
    mutating func read(liveInstances live: Int, fewestOwnedByOthers fewest: Int?, enabled: Int) {
        liveInstances = max(1, live)
        self.enabled = enabled
        if let fewest, fewest < floor { shortReads += 1 } else { shortReads = 0 }
    }

    /// Whether an instance owning `owned` tenants should give one up now.
    func shouldHandOver(owned: Int) -> Bool {
        owned > share || (shortReads >= 2 && owned > floor)
    }

    /// This instance gave a tenant up: the next hand-over to a short instance waits for two fresh reads.
    mutating func handedOver() { shortReads = 0 }
}
