/// The settings of a rep an admin may change with `updateRep`; `nil` fields are left as they are.
/// (Presence has its own operation, and permissions are granted and revoked one at a time.)
public struct RepUpdate: Sendable, Hashable {
    /// A new display name.
    public var displayName: String?
    /// A new capacity (1...100).
    public var capacity: Int?

    /// Creates an update.
    public init(displayName: String? = nil, capacity: Int? = nil) {
        self.displayName = displayName
        self.capacity = capacity
    }
}
