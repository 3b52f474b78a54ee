import Foundation
import ProtoRuntime
import SessionAPI

// MARK: - Tables and field blocks

/// An aligned text table: a header row and data rows, columns separated by
/// two spaces, no trailing blanks.
struct Table {
    enum Alignment { case left, right }

    var headers: [String]
    var alignments: [Alignment]
    var rows: [[String]] = []

    init(_ headers: [String], rightAligned: Set<Int> = []) {
        self.headers = headers
        self.alignments = headers.indices.map { rightAligned.contains($0) ? .right : .left }
    }

    mutating func add(_ row: [String]) {
        rows.append(row.map { $0.isEmpty ? "-" : $0 })
    }

    func rendered() -> String {
        let all = [headers] + rows
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count {
                widths[i] = max(widths[i], cell.count)
            }
        }
        return all.map { row in
            var line = ""
            for (i, cell) in row.enumerated() where i < widths.count {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                if i > 0 { line += "  " }
                line += alignments[i] == .right ? pad + cell : cell + (i == row.count - 1 ? "" : pad)
            }
            return line
        }.joined(separator: "\n")
    }
}

/// Prints a table, or `empty` when it has no rows.
func printTable(_ table: Table, empty: String) {
    say(table.rows.isEmpty ? empty : table.rendered())
}

/// A `key: value` block with the values aligned.
func fieldBlock(_ fields: [(String, String)]) -> String {
    let width = (fields.map { $0.0.count }.max() ?? 0) + 1
    return fields.map { key, value in
        let label = key + ":"
        return label + String(repeating: " ", count: width - label.count) + " " + (value.isEmpty ? "-" : value)
    }.joined(separator: "\n")
}

/// Prints a message as pretty JSON.
func printJSON(_ message: some ProtoJSONEncodable) {
    say(message.jsonObject().rendered(pretty: true))
}

/// Writes a line to stderr (notes that must not mix with the data on stdout).
func note(_ text: String) {
    FileHandle.standardError.write(Data("sessionctl: \(text)\n".utf8))
}

// MARK: - Times and durations

/// Unix milliseconds as ISO-8601 UTC (`2025-03-01T09:30:00Z`, with `.123`
/// when the milliseconds are not zero); `-` for 0 (not set).
func isoTime(_ ms: Int64) -> String {
    guard ms != 0 else { return "-" }
    let msPerDay: Int64 = 86_400_000
    var days = ms / msPerDay
    var rest = ms % msPerDay
    if rest < 0 { rest += msPerDay; days -= 1 }
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    let seconds = rest / 1000, millis = rest % 1000
    var out = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
    if millis != 0 { out += "." + pad(millis, 3) }
    return out + "Z"
}

private func pad(_ n: Int64, _ width: Int) -> String {
    let digits = String(n)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// Milliseconds as a short duration: `24h`, `10m`, `1h30m`, `90s` → `1m30s`,
/// `7d`, `250ms`.
func formatDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    if ms < 0 { return "-" + formatDuration(-ms) }
    let day: Int64 = 86_400_000
    if ms % day == 0, ms >= 2 * day { return "\(ms / day)d" }
    var out = ""
    let hours = ms / 3_600_000, minutes = ms / 60_000 % 60, seconds = ms / 1000 % 60, millis = ms % 1000
    if hours > 0 { out += "\(hours)h" }
    if minutes > 0 { out += "\(minutes)m" }
    if seconds > 0 { out += "\(seconds)s" }
    if millis > 0 { out += "\(millis)ms" }
    return out
}

// MARK: - Domain values

func statusName(_ status: SessionsV1.SessionStatus) -> String {
    status == .unspecified ? "-" : status.protoName
}

func reasonName(_ reason: SessionsV1.TransitionReason) -> String {
    reason == .unspecified ? "-" : reason.protoName
}

func permissionList(_ permissions: [SessionsV1.Permission]) -> String {
    permissions.isEmpty ? "none" : permissions.map(\.protoName).joined(separator: ", ")
}

/// `rep:alice`, `service:chat-gateway`, `admin:ops`, `system`.
func actorText(_ actor: SessionsV1.Actor?) -> String {
    guard let actor else { return "-" }
    let kind: String
    switch actor.kind {
    case .actorService: kind = "service"
    case .actorRep: kind = "rep"
    case .actorAdmin: kind = "admin"
    case .actorSystem: kind = "system"
    case .unspecified: kind = ""
    }
    if kind == "system", actor.id.isEmpty || actor.id == "system" { return "system" }
    if kind.isEmpty { return actor.id.isEmpty ? "-" : actor.id }
    return actor.id.isEmpty ? kind : "\(kind):\(actor.id)"
}
