import Testing

@testable import SessionServer

@Suite("How an instance decides its share of the tenants")
struct TenantSpreadTests {
    @Test("Before the registry is first read there is no limit: an instance starting takes every tenant it can lock")
    func noLimitBeforeTheFirstRead() {
        var spread = TenantSpread()
        #expect(spread.share == Int.max && spread.floor == 0)
        #expect(!spread.shouldHandOver(owned: 50))
        spread.enabled = 3  // a tenant created through this instance: the share follows the registry it knows
        #expect(spread.share == 3)
    }

    @Test("The share is the enabled tenants over the live instances, rounded up; over it, an instance hands one over")
    func share() {
        var spread = TenantSpread()
        spread.read(liveInstances: 1, fewestOwnedByOthers: nil, enabled: 9)
        #expect(spread.share == 9)
        #expect(!spread.shouldHandOver(owned: 9))
        // A second instance joins: 9 over 2 is 5, so the first gives up tenants down to 5.
        spread.read(liveInstances: 2, fewestOwnedByOthers: 0, enabled: 9)
        #expect(spread.share == 5 && spread.floor == 4)
        #expect(spread.shouldHandOver(owned: 9))
        #expect(spread.shouldHandOver(owned: 6))
        #expect(!spread.shouldHandOver(owned: 5), "at its share, and the other was short on one read only")
    }

    @Test("One stale heartbeat showing another instance short never moves a tenant; two fresh reads in a row do")
    func shortNeedsTwoReads() {
        var spread = TenantSpread()
        // 12 + 1 tenants over 3 instances: share 5, floor 4; this one owns 5.
        spread.read(liveInstances: 3, fewestOwnedByOthers: 4, enabled: 13)
        #expect(!spread.shouldHandOver(owned: 5))
        spread.read(liveInstances: 3, fewestOwnedByOthers: 3, enabled: 13)
        #expect(!spread.shouldHandOver(owned: 5), "one read: the other may already have taken what it lacked")
        spread.read(liveInstances: 3, fewestOwnedByOthers: 3, enabled: 13)
        #expect(spread.shouldHandOver(owned: 5))
        spread.handedOver()
        // The read right after a hand-over may still carry the old heartbeat: no second hand-over.
        spread.read(liveInstances: 3, fewestOwnedByOthers: 3, enabled: 13)
        #expect(!spread.shouldHandOver(owned: 5))
        spread.read(liveInstances: 3, fewestOwnedByOthers: 4, enabled: 13)
        #expect(!spread.shouldHandOver(owned: 5))
        #expect(spread.shortReads == 0)
        // Never below the floor, however short the others look.
        spread.read(liveInstances: 3, fewestOwnedByOthers: 0, enabled: 13)
        spread.read(liveInstances: 3, fewestOwnedByOthers: 0, enabled: 13)
        #expect(spread.shouldHandOver(owned: 5))
        #expect(!spread.shouldHandOver(owned: 4))
    }
}
