/// A signed length of time in whole milliseconds.
///
/// Durations of the domain (timeouts, auto-end delays) are stored and compared as `Milliseconds`;
/// the helpers `.seconds(_:)`, `.minutes(_:)`, `.hours(_:)` and `.days(_:)` keep call sites readable.
public struct Milliseconds: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The number of milliseconds.
    public var value: Int64

    /// Creates a duration of `value` milliseconds.
    public init(_ value: Int64) {
        self.value = value
    }

    /// No time at all.
    public static let zero = Milliseconds(0)

    /// A duration of `count` milliseconds.
    public static func milliseconds(_ count: Int64) -> Milliseconds {
        Milliseconds(count)
    }

    /// A duration of `count` seconds (saturating).
    public static func seconds(_ count: Int64) -> Milliseconds {
        scaled(count, by: 1_000)
    }

    /// A duration of `count` minutes (saturating).
    public static func minutes(_ count: Int64) -> Milliseconds {
        scaled(count, by: 60_000)
    }

    /// A duration of `count` hours (saturating).
    public static func hours(_ count: Int64) -> Milliseconds {
        scaled(count, by: 3_600_000)
    }

    /// A duration of `count` days of 24 hours (saturating).
    public static func days(_ count: Int64) -> Milliseconds {
        scaled(count, by: 86_400_000)
    }

    private static func scaled(_ count: Int64, by factor: Int64) -> Milliseconds {
        let (product, overflow) = count.multipliedReportingOverflow(by: factor)
        if overflow {
            return Milliseconds(count > 0 ? .max : .min)
        }
        return Milliseconds(product)
    }

    /// The sum of two durations (saturating).
    public static func + (lhs: Milliseconds, rhs: Milliseconds) -> Milliseconds {
        let (sum, overflow) = lhs.value.addingReportingOverflow(rhs.value)
        return overflow ? Milliseconds(rhs.value > 0 ? .max : .min) : Milliseconds(sum)
    }

    /// The difference of two durations (saturating).
    public static func - (lhs: Milliseconds, rhs: Milliseconds) -> Milliseconds {
        let (difference, overflow) = lhs.value.subtractingReportingOverflow(rhs.value)
        return overflow ? Milliseconds(rhs.value > 0 ? .min : .max) : Milliseconds(difference)
    }

    /// Orders durations by length.
    public static func < (lhs: Milliseconds, rhs: Milliseconds) -> Bool {
        lhs.value < rhs.value
    }

    /// A human-readable rendering such as `1d 2h`, `30m`, `45s` or `250ms`.
    public var description: String {
        if value == 0 { return "0ms" }
        var remaining = value.magnitude
        var parts: [String] = []
        let units: [(UInt64, String)] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")]
        for (size, suffix) in units where remaining >= size {
            parts.append("\(remaining / size)\(suffix)")
            remaining %= size
        }
        return (value < 0 ? "-" : "") + parts.joined(separator: " ")
    }
}
