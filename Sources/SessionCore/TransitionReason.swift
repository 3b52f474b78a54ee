/// Why a session changed status; recorded on every `Event` (raw values are proto-style names).
public enum TransitionReason: String, Sendable, CaseHashable {
    /// `createSession` opened a `WAITING` session.
    case created = "CREATED"
    /// A customer message opened a session, or answered a `NEW` (business-initiated) session.
    case customerMessage = "CUSTOMER_MESSAGE"
    /// A customer wrote on an `INACTIVE` session (back to `WAITING`, or `ACTIVE` with the same rep).
    case customerReturned = "CUSTOMER_RETURNED"
    /// Routing assigned a `WAITING` session to a rep.
    case routed = "ROUTED"
    /// The owning rep (or an admin) marked the session inactive.
    case markedInactive = "MARKED_INACTIVE"
    /// The customer inactivity countdown expired.
    case customerInactivityTimeout = "CUSTOMER_INACTIVITY_TIMEOUT"
    /// An `INACTIVE` session reached its auto-end deadline.
    case autoEnded = "AUTO_ENDED"
    /// The owning rep ended the session.
    case endedByRep = "ENDED_BY_REP"
    /// An admin ended the session.
    case endedByAdmin = "ENDED_BY_ADMIN"
    /// The customer's channel (a service principal) ended the session on the customer's behalf.
    case endedByCustomer = "ENDED_BY_CUSTOMER"
    /// The service itself ended the session (system actor).
    case endedBySystem = "ENDED_BY_SYSTEM"
    /// The owning rep went `OFFLINE`; the `ACTIVE` session went back to `WAITING`.
    case repWentOffline = "REP_WENT_OFFLINE"
    /// A rep or service started a session toward the customer (`NEW`).
    case businessInitiated = "BUSINESS_INITIATED"
}
