public import SessionCore

/// The binary form of a `JournalBatch` in the journal file: little-endian integers, strings as a
/// length and UTF-8 bytes, enums by their raw (proto-style) names so that a reordered enum never
/// changes what a stored record means.
public enum JournalCodec {
    public struct Corrupt: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "journal record is corrupt: \(reason)" }
    }

    static let version: UInt8 = 1

    public static func encode(_ batch: JournalBatch) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.count(batch.channels.count)
        for c in batch.channels {
            w.string(c.id); w.string(c.type.rawValue); w.string(c.capacityModel.rawValue); w.int(c.capacityWeight)
            w.optionalInt64(c.customerInactivityTimeout?.value); w.int64(c.inactiveAutoEndAfter.value); w.bool(c.inactivateActionVisible)
        }
        w.count(batch.reps.count)
        for r in batch.reps {
            w.string(r.id); w.string(r.displayName); w.int(r.capacity); w.string(r.presence.rawValue)
            w.count(r.permissions.count)
            for p in r.permissions.map(\.rawValue).sorted() { w.string(p) }
            w.int(r.usedCapacity); w.int64(r.idleSince.millisecondsSinceEpoch)
        }
        w.count(batch.sessions.count)
        for s in batch.sessions {
            w.string(s.id); w.string(s.conversationId); w.string(s.channelId); w.string(s.status.rawValue)
            w.optionalString(s.repId); w.int64(s.createdAt.millisecondsSinceEpoch); w.int64(s.updatedAt.millisecondsSinceEpoch)
            w.optionalInt64(s.queuedAt?.millisecondsSinceEpoch); w.optionalInt64(s.inactivityDeadline?.millisecondsSinceEpoch)
            w.optionalInt64(s.autoEndDeadline?.millisecondsSinceEpoch); w.optionalInt64(s.awaitingCustomerSince?.millisecondsSinceEpoch)
            w.int(s.heldCapacity); w.optionalString(s.endReason?.rawValue); w.int64(s.version)
        }
        w.count(batch.events.count)
        for e in batch.events {
            w.int64(e.cursor); w.string(e.sessionId); w.int64(e.sequence); w.int64(e.time.millisecondsSinceEpoch)
            w.string(e.actor.kind.rawValue); w.string(e.actor.id); w.optionalString(e.from?.rawValue); w.string(e.to.rawValue)
            w.optionalString(e.repId); w.string(e.reason.rawValue)
        }
        w.count(batch.messages.count)
        for m in batch.messages {
            w.string(m.messageId); w.string(m.channelId); w.string(m.sessionId); w.string(m.sender.rawValue); w.string(m.text)
            w.int64(m.time.millisecondsSinceEpoch)
        }
        let settings = batch.settings.sorted { $0.key < $1.key }
        w.count(settings.count)
        for (key, value) in settings { w.string(key); w.int64(value) }
        return w.bytes
    }

    public static func decode(_ bytes: ArraySlice<UInt8>) throws(Corrupt) -> JournalBatch {
        var r = ByteReader(bytes: bytes)
        guard try r.u8() == version else { throw Corrupt(reason: "unknown version") }
        var batch = JournalBatch()
        for _ in 0..<(try r.count()) {
            batch.record(Channel(
                id: try r.string(), type: try r.enumValue(), capacityModel: try r.enumValue(), capacityWeight: try r.int(),
                customerInactivityTimeout: try r.optionalInt64().map(Milliseconds.init),
                inactiveAutoEndAfter: Milliseconds(try r.int64()), inactivateActionVisible: try r.bool()))
        }
        for _ in 0..<(try r.count()) {
            let id = try r.string(), name = try r.string(), capacity = try r.int()
            let presence: Presence = try r.enumValue()
            var permissions: Set<Permission> = []
            for _ in 0..<(try r.count()) { permissions.insert(try r.enumValue()) }
            batch.record(Rep(id: id, displayName: name, capacity: capacity, presence: presence, permissions: permissions,
                             usedCapacity: try r.int(), idleSince: Timestamp(millisecondsSinceEpoch: try r.int64())))
        }
        for _ in 0..<(try r.count()) {
            batch.record(Session(
                id: try r.string(), conversationId: try r.string(), channelId: try r.string(), status: try r.enumValue(),
                repId: try r.optionalString(), createdAt: try r.timestamp(), updatedAt: try r.timestamp(),
                queuedAt: try r.optionalTimestamp(), inactivityDeadline: try r.optionalTimestamp(),
                autoEndDeadline: try r.optionalTimestamp(), awaitingCustomerSince: try r.optionalTimestamp(),
                heldCapacity: try r.int(), endReason: try r.optionalString().map { raw throws(Corrupt) in try ByteReader.enumValue(raw) },
                version: try r.int64()))
        }
        for _ in 0..<(try r.count()) {
            let cursor = try r.int64(), sessionId = try r.string(), sequence = try r.int64(), time = try r.timestamp()
            let actor = SessionCore.Actor(kind: try r.enumValue(), id: try r.string())
            let from: SessionStatus? = try r.optionalString().map { raw throws(Corrupt) in try ByteReader.enumValue(raw) }
            batch.record(Event(cursor: cursor, sessionId: sessionId, sequence: sequence, time: time, actor: actor, from: from,
                               to: try r.enumValue(), repId: try r.optionalString(), reason: try r.enumValue()))
        }
        for _ in 0..<(try r.count()) {
            batch.record(Message(messageId: try r.string(), channelId: try r.string(), sessionId: try r.string(),
                                 sender: try r.enumValue(), text: try r.string(), time: try r.timestamp()))
        }
        for _ in 0..<(try r.count()) { batch.record(setting: try r.string(), try r.int64()) }
        guard r.atEnd else { throw Corrupt(reason: "trailing bytes") }
        return batch
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    // Fixed-width integers byte by byte: each append is inlined, where appending a raw buffer
    // of 4 or 8 bytes went through the generic sequence path (a journal batch writes hundreds).
    mutating func u64(_ v: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v &>> UInt64(shift))) }
    }
    mutating func int64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func int(_ v: Int) { int64(Int64(v)) }
    mutating func count(_ v: Int) { u32(UInt32(v)) }
    mutating func u32(_ v: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v &>> UInt32(shift))) }
    }
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            u32(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }
    mutating func optionalString(_ s: String?) {
        if let s { bool(true); string(s) } else { bool(false) }
    }
    mutating func optionalInt64(_ v: Int64?) {
        if let v { bool(true); int64(v) } else { bool(false) }
    }
}

struct ByteReader {
    let bytes: ArraySlice<UInt8>
    var offset: Int

    init(bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    var atEnd: Bool { offset == bytes.endIndex }

    mutating func take(_ n: Int) throws(JournalCodec.Corrupt) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.endIndex - offset >= n else { throw JournalCodec.Corrupt(reason: "truncated") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8() throws(JournalCodec.Corrupt) -> UInt8 { try take(1).first! }
    mutating func bool() throws(JournalCodec.Corrupt) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw JournalCodec.Corrupt(reason: "bad boolean")
        }
    }
    mutating func u32() throws(JournalCodec.Corrupt) -> UInt32 {
        try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func u64() throws(JournalCodec.Corrupt) -> UInt64 {
        try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func int64() throws(JournalCodec.Corrupt) -> Int64 { Int64(bitPattern: try u64()) }
    mutating func int() throws(JournalCodec.Corrupt) -> Int { Int(try int64()) }
    mutating func count() throws(JournalCodec.Corrupt) -> Int {
        let n = Int(try u32())
        // Every element takes at least one byte: a count beyond what is left is corrupt, not an allocation.
        guard n <= bytes.endIndex - offset else { throw JournalCodec.Corrupt(reason: "count beyond the record") }
        return n
    }
    mutating func string() throws(JournalCodec.Corrupt) -> String {
        let n = Int(try u32())
        let utf8 = try take(n)
        guard let s = String(validating: utf8, as: UTF8.self) else { throw JournalCodec.Corrupt(reason: "invalid UTF-8") }
        return s
    }
    mutating func optionalString() throws(JournalCodec.Corrupt) -> String? { try bool() ? try string() : nil }
    mutating func optionalInt64() throws(JournalCodec.Corrupt) -> Int64? { try bool() ? try int64() : nil }
    mutating func timestamp() throws(JournalCodec.Corrupt) -> Timestamp { Timestamp(millisecondsSinceEpoch: try int64()) }
    mutating func optionalTimestamp() throws(JournalCodec.Corrupt) -> Timestamp? { try optionalInt64().map { Timestamp(millisecondsSinceEpoch: $0) } }
    mutating func enumValue<E: RawRepresentable>() throws(JournalCodec.Corrupt) -> E where E.RawValue == String {
        try Self.enumValue(try string())
    }
    static func enumValue<E: RawRepresentable>(_ raw: String) throws(JournalCodec.Corrupt) -> E where E.RawValue == String {
        guard let value = E(rawValue: raw) else { throw JournalCodec.Corrupt(reason: "unknown \(E.self) '\(raw.prefix(40))'") }
        return value
    }
}
