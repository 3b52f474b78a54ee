/// One page of a listing, with the token to fetch the next page.
public struct Page<Item: Sendable & Hashable>: Sendable, Hashable {
    /// The items of this page, in listing order.
    public var items: [Item]
    /// Pass this as `pageToken` to get the next page; `nil` when this is the last page.
    public var nextPageToken: String?

    /// Creates a page.
    public init(items: [Item], nextPageToken: String?) {
        self.items = items
        self.nextPageToken = nextPageToken
    }
}
