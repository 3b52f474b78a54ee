/// A configured deployment of one channel type (for example `web-eu`, an Enhanced Web Chat v2).
public struct Channel: Sendable, Hashable {
    /// The allowed range of `capacityWeight`.
    public static let capacityWeightRange: ClosedRange<Int> = 1...100
    /// The allowed range of `customerInactivityTimeout`: 1 minute to 24 hours.
    public static let customerInactivityTimeoutRange: ClosedRange<Milliseconds> = .minutes(1) ... .hours(24)
    /// The allowed range of `inactiveAutoEndAfter`: 10 minutes to 7 days.
    public static let inactiveAutoEndAfterRange: ClosedRange<Milliseconds> = .minutes(10) ... .days(7)
    /// The default delay after which an `INACTIVE` session ends by itself: 24 hours.
    public static let defaultInactiveAutoEndAfter: Milliseconds = .hours(24)

    /// The channel id: 1 to 128 characters from `[A-Za-z0-9._-]`.
    public var id: String
    /// The channel type (immutable after creation).
    public var type: ChannelType
    /// How sessions of this channel use rep capacity.
    public var capacityModel: CapacityModel
    /// Units of rep capacity one `ACTIVE` session uses (1...100, default 1).
    public var capacityWeight: Int
    /// After the rep's first message following the customer's last one, the session becomes `INACTIVE`
    /// if the customer stays silent this long. `nil` (default) = off. Only Enhanced Chat and Bring Your
    /// Own Channel; 1 minute to 24 hours.
    public var customerInactivityTimeout: Milliseconds?
    /// An `INACTIVE` session ends by itself after this long (default 24 hours; 10 minutes to 7 days).
    public var inactiveAutoEndAfter: Milliseconds
    /// Whether the Customer Inactive action is offered (default true); when false, marking a session
    /// inactive by hand is refused (the inactivity timer still works).
    public var inactivateActionVisible: Bool

    /// Creates a channel. Call `validate()` before storing it.
    public init(
        id: String,
        type: ChannelType,
        capacityModel: CapacityModel = .tabBased,
        capacityWeight: Int = 1,
        customerInactivityTimeout: Milliseconds? = nil,
        inactiveAutoEndAfter: Milliseconds = Channel.defaultInactiveAutoEndAfter,
        inactivateActionVisible: Bool = true
    ) {
        self.id = id
        self.type = type
        self.capacityModel = capacityModel
        self.capacityWeight = capacityWeight
        self.customerInactivityTimeout = customerInactivityTimeout
        self.inactiveAutoEndAfter = inactiveAutoEndAfter
        self.inactivateActionVisible = inactivateActionVisible
    }

    /// The family of `type`.
    public var family: ChannelFamily {
        type.family
    }

    /// Checks every setting; throws `INVALID_ARGUMENT` naming the channel and the offending setting.
    public func validate() throws(DomainError) {
        try IdentifierRules.validateResourceID(id, what: "channel id")
        if !Channel.capacityWeightRange.contains(capacityWeight) {
            throw .invalidArgument(
                "channel \(id) has capacity weight \(capacityWeight); it must be between \(Channel.capacityWeightRange.lowerBound) and \(Channel.capacityWeightRange.upperBound)"
            )
        }
        if let timeout = customerInactivityTimeout {
            if !family.supportsCustomerInactivityTimeout {
                throw .invalidArgument(
                    "channel \(id) is \(type.rawValue); a customer inactivity timeout can only be set on Enhanced Chat and BRING_YOUR_OWN_CHANNEL channels"
                )
            }
            if !Channel.customerInactivityTimeoutRange.contains(timeout) {
                throw .invalidArgument(
                    "channel \(id) has customer inactivity timeout \(timeout); it must be between 1 minute and 24 hours"
                )
            }
        }
        if !Channel.inactiveAutoEndAfterRange.contains(inactiveAutoEndAfter) {
            throw .invalidArgument(
                "channel \(id) has inactive auto-end delay \(inactiveAutoEndAfter); it must be between 10 minutes and 7 days"
            )
        }
    }
}
