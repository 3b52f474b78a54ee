/// Produces ids for new sessions. Injected into the `SessionEngine` so tests are deterministic.
public protocol IDGenerator: Sendable {
    /// A new, unique session id, created at `now`.
    mutating func makeSessionID(at now: Timestamp) -> String
}

/// Production ids: `ses_` + 12 hex digits of the creation time + 16 random hex digits.
///
/// Unique across server instances without coordination, and roughly time-ordered so that listing
/// sessions by id lists them about in creation order.
public struct RandomIDGenerator: IDGenerator {
    /// Creates a generator backed by the system's random number generator.
    public init() {}

    /// A new id such as `ses_019a2b3c4d5e8f7e6d5c4b3a2918`.
    public mutating func makeSessionID(at now: Timestamp) -> String {
        var random = SystemRandomNumberGenerator()
        let time = UInt64(clamping: max(0, now.millisecondsSinceEpoch)) & 0xFFFF_FFFF_FFFF
        return "ses_" + hex(time, digits: 12) + hex(random.next(), digits: 16)
    }

    private func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// Deterministic ids for tests: `ses_000001`, `ses_000002`, ... (zero-padded so they sort in order).
public struct SequentialIDGenerator: IDGenerator {
    /// The number the next id will carry.
    public var next: Int
    /// The prefix, `ses_` by default.
    public var prefix: String

    /// Creates a generator starting at `start`.
    public init(prefix: String = "ses_", start: Int = 1) {
        self.prefix = prefix
        self.next = start
    }

    /// The next id in sequence.
    public mutating func makeSessionID(at now: Timestamp) -> String {
        defer { next += 1 }
        let digits = String(next)
        return prefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}
