import ArgumentParser
import ProtoRuntime
import SessionAPI
import SessionCore

// MARK: - The server's limits

/// The ranges the server enforces, taken from SessionCore itself where it
/// defines them, so the CLI never refuses what the server accepts nor accepts
/// what it refuses.
enum Limits {
    /// Rep capacity (`Rep.capacityRange`).
    static let repCapacity = SessionCore.Rep.capacityRange
    /// Channel capacity weight (`Channel.capacityWeightRange`).
    static let channelWeight = SessionCore.Channel.capacityWeightRange
    /// Customer inactivity timeout in ms (`Channel.customerInactivityTimeoutRange`: 1 min ... 24 h).
    static let customerInactivityTimeout = SessionCore.Channel.customerInactivityTimeoutRange.lowerBound.value
        ... SessionCore.Channel.customerInactivityTimeoutRange.upperBound.value
    /// Inactive auto-end delay in ms (`Channel.inactiveAutoEndAfterRange`: 10 min ... 7 d).
    static let inactiveAutoEndAfter = SessionCore.Channel.inactiveAutoEndAfterRange.lowerBound.value
        ... SessionCore.Channel.inactiveAutoEndAfterRange.upperBound.value
    /// The largest page the server returns (`SessionEngine.maxPageSize`); it caps larger requests.
    static let maxPageSize = SessionEngine.maxPageSize
    /// One AdvanceClock call moves the clock by 1 ms ... 30 days
    /// (`ClockServiceProvider.maxAdvanceMs` in SessionServer, which the CLI does not link).
    static let clockAdvance: ClosedRange<Int64> = 1 ... 30 * 86_400_000
    /// A token name: 1 to 128 characters (TokenServiceProvider.issueToken).
    static let tokenNameLength = 1...128
}

// MARK: - Enum arguments

/// Parses a command-line spelling of a proto enum value.
///
/// Accepted spellings, case-insensitively: the `.proto` name (`TAB_BASED`),
/// the same with dashes or spaces (`tab-based`), with the enum's own prefix
/// (`capacity-model-tab-based`) and, when it names one value only, a suffix
/// of the name (`web-chat-v2`). The zero (`*_UNSPECIFIED`) value is never
/// accepted. Anything else is a `ValidationError` that lists the choices.
func parseEnum<E: ProtoEnum>(_ raw: String, _ what: String) throws -> E {
    let normalised = normaliseEnumSpelling(raw)
    let choices = E.allCases.filter { $0.rawValue != 0 }
    var spellings = [normalised]
    let prefix = enumPrefix(E.self)
    if !prefix.isEmpty, normalised.hasPrefix(prefix), normalised.count > prefix.count {
        spellings.append(String(normalised.dropFirst(prefix.count)))
    }
    for wanted in spellings where !wanted.isEmpty {
        if let exact = choices.first(where: { $0.protoName == wanted }) { return exact }
        let matches = choices.filter { $0.protoName.hasSuffix("_" + wanted) }
        if matches.count == 1, let value = E(protoName: wanted), value.rawValue != 0 { return value }
        if matches.count > 1 {
            throw ValidationError("'\(raw)' is ambiguous: it could be \(matches.map { enumSpelling($0.protoName) }.joined(separator: ", ") )")
        }
    }
    throw ValidationError("'\(raw)' is not a \(what); expected one of: \(enumChoices(E.self))")
}

/// The valid spellings of an enum's values, comma-separated, for help texts and errors.
func enumChoices<E: ProtoEnum>(_ type: E.Type) -> String {
    E.allCases.filter { $0.rawValue != 0 }.map { enumSpelling($0.protoName) }.joined(separator: ", ")
}

/// `TAB_BASED` → `tab-based`.
func enumSpelling(_ protoName: String) -> String {
    String(protoName.lowercased().map { $0 == "_" ? "-" : $0 })
}

private func normaliseEnumSpelling(_ raw: String) -> String {
    var out = ""
    for ch in raw.trimmingWhitespace().uppercased() {
        out.append(ch == "-" || ch == " " ? "_" : ch)
    }
    return out
}

/// The common prefix of an enum's names, read from its zero value
/// (`CAPACITY_MODEL_UNSPECIFIED` → `CAPACITY_MODEL_`).
private func enumPrefix<E: ProtoEnum>(_ type: E.Type) -> String {
    let zero = E.defaultValue.protoName
    guard zero.hasSuffix("_UNSPECIFIED") else { return "" }
    return String(zero.dropLast("UNSPECIFIED".count))
}

// MARK: - Durations

/// Parses a duration such as `90s`, `10m`, `1h30m`, `24h`, `7d` or `250ms`
/// into milliseconds. A plain number is refused: its unit would be a guess.
func parseDuration(_ raw: String) throws -> Int64 {
    let text = raw.trimmingWhitespace().lowercased()
    let examples = "90s, 10m, 1h30m, 24h or 7d"
    guard !text.isEmpty else { throw ValidationError("empty duration; write one such as \(examples)") }
    if text.allSatisfy(\.isNumber) {
        throw ValidationError("'\(raw)' has no unit; plain milliseconds are not accepted, write a duration such as \(examples)")
    }
    let units: [(String, Int64)] = [("ms", 1), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
    var seen = Set<String>()
    var total: Int64 = 0
    var rest = Substring(text)
    while !rest.isEmpty {
        let digits = rest.prefix(while: \.isNumber)
        guard !digits.isEmpty, let number = Int64(digits) else {
            throw ValidationError("'\(raw)' is not a duration; write one such as \(examples)")
        }
        rest = rest.dropFirst(digits.count)
        guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) }) else {
            let found = rest.prefix(while: { !$0.isNumber })
            throw ValidationError(found.isEmpty
                ? "'\(raw)': '\(digits)' has no unit; use d, h, m, s or ms, as in \(examples)"
                : "'\(raw)': unknown unit '\(found)'; use d, h, m, s or ms, as in \(examples)")
        }
        guard seen.insert(unit).inserted else { throw ValidationError("'\(raw)' repeats the unit '\(unit)'") }
        rest = rest.dropFirst(unit.count)
        let (product, overflow1) = number.multipliedReportingOverflow(by: factor)
        let (sum, overflow2) = total.addingReportingOverflow(product)
        guard !overflow1, !overflow2 else { throw ValidationError("'\(raw)' is too long a duration") }
        total = sum
    }
    return total
}

/// A duration that must be longer than zero.
func parsePositiveDuration(_ raw: String) throws -> Int64 {
    let ms = try parseDuration(raw)
    guard ms > 0 else { throw ValidationError("'\(raw)' must be longer than zero") }
    return ms
}

/// A duration within `range` (milliseconds), named `what` in the error.
func parseDuration(_ raw: String, in range: ClosedRange<Int64>, _ what: String) throws -> Int64 {
    let ms = try parseDuration(raw)
    guard range.contains(ms) else {
        throw ValidationError("\(what) must be between \(formatDuration(range.lowerBound)) and \(formatDuration(range.upperBound)), not \(formatDuration(ms))")
    }
    return ms
}

/// `--customer-inactivity-timeout`: a duration of 1m...24h, or `off` (0, the timer is not used).
func parseInactivityTimeout(_ raw: String) throws -> Int64 {
    if ["off", "none", "disabled"].contains(raw.trimmingWhitespace().lowercased()) { return 0 }
    return try parseDuration(raw, in: Limits.customerInactivityTimeout, "--customer-inactivity-timeout")
}

/// `--auto-end-after`: a duration of 10m...7d, or `default` (0, the server's 24 h).
func parseAutoEndAfter(_ raw: String) throws -> Int64 {
    if raw.trimmingWhitespace().lowercased() == "default" { return 0 }
    return try parseDuration(raw, in: Limits.inactiveAutoEndAfter, "--auto-end-after")
}

/// `clock advance`: a duration of 1ms...30d.
func parseClockAdvance(_ raw: String) throws -> Int64 {
    try parseDuration(raw, in: Limits.clockAdvance, "the clock advance")
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[start...end])
    }
}

// MARK: - Integers

/// Checks an integer option against a range and converts it to `Int32`.
func int32Option(_ value: Int, _ name: String, in range: ClosedRange<Int>) throws -> Int32 {
    guard range.contains(value) else {
        throw ValidationError("\(name) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
    }
    return Int32(value)
}

/// A page size or limit: 0 (the server's default) or more; the server caps values above
/// `Limits.maxPageSize` at it, and refuses negative ones.
func pageSizeOption(_ value: Int, _ name: String) throws -> Int32 {
    try int32Option(value, name, in: 0...Int(Int32.max))
}

/// Checks an identifier argument is not blank.
func requireID(_ value: String, _ name: String) throws {
    guard !value.trimmingWhitespace().isEmpty else { throw ValidationError("\(name) must not be empty") }
}
