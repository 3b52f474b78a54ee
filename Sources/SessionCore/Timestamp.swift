/// A point in time, as whole milliseconds since the Unix epoch (UTC).
///
/// The domain core never reads a clock: every operation receives the current `Timestamp`
/// from its caller, so tests can drive time by hand.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millisecondsSinceEpoch: Int64

    /// Creates a timestamp from milliseconds since the Unix epoch.
    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The Unix epoch itself.
    public static let epoch = Timestamp(millisecondsSinceEpoch: 0)

    /// Orders timestamps chronologically.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// The timestamp `rhs` later than `lhs`, saturating at the representable bounds instead of trapping.
    public static func + (lhs: Timestamp, rhs: Milliseconds) -> Timestamp {
        let (sum, overflow) = lhs.millisecondsSinceEpoch.addingReportingOverflow(rhs.value)
        if overflow {
            return Timestamp(millisecondsSinceEpoch: rhs.value > 0 ? .max : .min)
        }
        return Timestamp(millisecondsSinceEpoch: sum)
    }

    /// The timestamp `rhs` earlier than `lhs`, saturating at the representable bounds instead of trapping.
    public static func - (lhs: Timestamp, rhs: Milliseconds) -> Timestamp {
        let (difference, overflow) = lhs.millisecondsSinceEpoch.subtractingReportingOverflow(rhs.value)
        if overflow {
            return Timestamp(millisecondsSinceEpoch: rhs.value > 0 ? .min : .max)
        }
        return Timestamp(millisecondsSinceEpoch: difference)
    }

    /// The duration from `rhs` to `lhs` (negative when `lhs` is earlier), saturating instead of trapping.
    public static func - (lhs: Timestamp, rhs: Timestamp) -> Milliseconds {
        let (difference, overflow) = lhs.millisecondsSinceEpoch.subtractingReportingOverflow(rhs.millisecondsSinceEpoch)
        if overflow {
            return Milliseconds(lhs > rhs ? .max : .min)
        }
        return Milliseconds(difference)
    }

    /// Advances this timestamp by `duration` (saturating).
    public static func += (lhs: inout Timestamp, rhs: Milliseconds) {
        lhs = lhs + rhs
    }

    /// The raw milliseconds, followed by `ms`.
    public var description: String {
        "\(millisecondsSinceEpoch)ms"
    }
}
