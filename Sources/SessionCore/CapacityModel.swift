/// How a channel's sessions consume rep capacity; it decides what happens when a customer
/// writes on an `INACTIVE` session.
public enum CapacityModel: String, Sendable, CaseHashable {
    /// The returning customer's session goes back to `WAITING` and is routed to any available rep.
    case tabBased = "TAB_BASED"
    /// The same rep continues the returning customer's session, even over capacity
    /// (unless that rep is offline, then it is routed like tab-based).
    case statusBased = "STATUS_BASED"
}
