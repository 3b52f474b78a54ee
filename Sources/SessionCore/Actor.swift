/// Who performs an operation: the authenticated caller, or the service itself.
///
/// The RPC layer maps a bearer token to an `Actor`; the engine checks roles against it.
/// (Named after the domain term; it shadows the standard library's `Actor` protocol only for
/// code that imports `SessionCore` and does not qualify the name.)
public struct Actor: Sendable, Hashable, CustomStringConvertible {
    /// The role of an actor.
    public enum Kind: String, Sendable, CaseHashable {
        /// A channel integration: creates sessions, posts customer messages, ends on the customer's
        /// behalf, reads everything.
        case service = "SERVICE"
        /// One rep acting on its own sessions; `Actor.id` is the rep id.
        case rep = "REP"
        /// An administrator: configuration, reps, permissions, any session.
        case admin = "ADMIN"
        /// The service itself (routing, timers). Passes every check; never mapped from a token.
        case system = "SYSTEM"
    }

    /// The role.
    public var kind: Kind
    /// For `.rep`, the rep id; otherwise a display id of the principal (for example the token name).
    public var id: String

    /// Creates an actor.
    public init(kind: Kind, id: String) {
        self.kind = kind
        self.id = id
    }

    /// A channel integration named `id`.
    public static func service(_ id: String) -> Actor { Actor(kind: .service, id: id) }
    /// The rep `id`.
    public static func rep(_ id: String) -> Actor { Actor(kind: .rep, id: id) }
    /// The administrator named `id`.
    public static func admin(_ id: String) -> Actor { Actor(kind: .admin, id: id) }
    /// The service itself.
    public static let system = Actor(kind: .system, id: "system")

    /// The rep id when this actor is a rep.
    public var repId: String? {
        kind == .rep ? id : nil
    }

    /// `KIND:id`, for example `REP:r1`.
    public var description: String {
        "\(kind.rawValue):\(id)"
    }
}
