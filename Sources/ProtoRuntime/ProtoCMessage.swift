import CProtobufC

/// A Swift value type generated from a `.proto` message, convertible to and
/// from its protobuf-c struct. Serialization itself is done by protobuf-c.
///
/// Generated code implements the requirements; callers use
/// ``serializedBytes()`` and ``init(serializedBytes:)``.
public protocol ProtoCMessage: Sendable {
    /// The protobuf-c struct of this message.
    associatedtype CMessage

    init()
    /// Copies an unpacked protobuf-c message into Swift values, validating
    /// UTF-8 in `string` fields and refusing unknown enum values.
    init(cMessage: UnsafePointer<CMessage>) throws(ProtoDecodingError)
    /// Initialises `c` and fills it from `self`; every allocation is owned by `arena`.
    func fill(_ c: UnsafeMutablePointer<CMessage>, arena: ProtoArena)

    static func cUnpack(_ data: UnsafeRawBufferPointer) -> UnsafeMutablePointer<CMessage>?
    static func cFreeUnpacked(_ c: UnsafeMutablePointer<CMessage>)
    static func cPackedSize(_ c: UnsafePointer<CMessage>) -> Int
    static func cPack(_ c: UnsafePointer<CMessage>, into out: UnsafeMutablePointer<UInt8>) -> Int
}

extension ProtoCMessage {
    /// A protobuf-c copy of `self` living as long as `arena`.
    public func cMessage(in arena: ProtoArena) -> UnsafeMutablePointer<CMessage> {
        let c = arena.allocate(CMessage.self)
        fill(c, arena: arena)
        return c
    }

    /// The protobuf wire encoding of `self`.
    public func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        serialize(appendingTo: &out)
        return out
    }

    /// Appends the protobuf wire encoding of `self` to `buffer`.
    public func serialize(appendingTo buffer: inout [UInt8]) {
        let arena = ProtoArena()
        let c = cMessage(in: arena)
        let size = Self.cPackedSize(c)
        buffer.appendUninitialized(size) { out in
            let written = Self.cPack(c, into: out)
            precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
        }
    }

    /// The number of bytes ``serializedBytes()`` produces.
    public var serializedSize: Int {
        let arena = ProtoArena()
        return Self.cPackedSize(cMessage(in: arena))
    }

    /// Decodes the protobuf wire encoding in `bytes`.
    public init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {
        guard let c = Self.cUnpack(bytes) else {
            throw ProtoDecodingError(field: String(describing: Self.self), reason: "not a valid protobuf encoding")
        }
        defer { Self.cFreeUnpacked(c) }
        try self.init(cMessage: c)
    }

    /// Decodes the protobuf wire encoding in `bytes`.
    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        let result: Result<Self, ProtoDecodingError> = bytes.withUnsafeBytes { raw in
            do throws(ProtoDecodingError) { return .success(try Self(serializedBytes: raw)) } catch { return .failure(error) }
        }
        self = try result.get()
    }
}

/// A generated enum: a proto3 enum whose unknown values are refused on decode.
public protocol ProtoEnum: RawRepresentable, CaseIterable, Sendable where RawValue == Int32 {
    /// The value's name as written in the `.proto` file.
    var protoName: String { get }
    /// The zero value.
    static var defaultValue: Self { get }
}

extension ProtoEnum {
    /// Finds a value by its `.proto` name, case-insensitively, with or without
    /// the enum's common prefix (`"tab_based"`, `"TAB_BASED"`).
    public init?(protoName name: String) {
        // The exact name first: the server maps its own enums this way on every answer.
        for value in Self.allCases where value.protoName == name {
            self = value
            return
        }
        let wanted = name.uppercased().replacingOccurrences("-", with: "_")
        if let match = Self.allCases.first(where: { $0.protoName == wanted || $0.protoName.hasSuffix("_" + wanted) }) {
            self = match
        } else {
            return nil
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}

extension Array where Element == UInt8 {
    /// Grows the array by `count` bytes that `fill` must write in full,
    /// without zero-filling them first.
    public mutating func appendUninitialized(_ count: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        guard count > 0 else { return }
        let start = self.count
        if start == 0 {
            self = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                fill(buffer.baseAddress!)
                initialized = count
            }
            return
        }
        reserveCapacity(start + count)
        let tail = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(buffer.baseAddress!)
            initialized = count
        }
        append(contentsOf: tail)
    }
}
