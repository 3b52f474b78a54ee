public import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// The allocator every unpack uses: plain malloc, plus a 16-byte header
/// recording each block's size. protobuf-c keeps `string` fields as
/// NUL-terminated C strings, so an embedded NUL would otherwise silently cut
/// a string short; with the recorded size (`length + 1` for a string) the
/// decoder sees the real length and refuses such strings.
nonisolated(unsafe) public var protoUnpackAllocator = ProtobufCAllocator(
    alloc: { _, size in
        guard let base = malloc(size + 16) else { return nil }
        base.storeBytes(of: size, as: Int.self)
        base.storeBytes(of: protoAllocationMagic, toByteOffset: 8, as: UInt64.self)
        return base + 16
    },
    free: { _, pointer in
        guard let pointer else { return }
        free(pointer - 16)
    },
    allocator_data: nil)

/// Marks blocks from ``protoUnpackAllocator``.
public let protoAllocationMagic: UInt64 = 0x5345_5353_5250_4321

/// Conversions from protobuf-c values used by generated code.
public enum ProtoC {
    /// A `string` field: must be valid UTF-8.
    public static func string(_ p: UnsafeMutablePointer<CChar>?, field: String) throws(ProtoDecodingError) -> String {
        guard let p, p.pointee != 0 else { return "" }
        let raw = UnsafeRawPointer(p)
        let length = strlen(p)
        if (raw - 8).load(as: UInt64.self) == protoAllocationMagic, (raw - 16).load(as: Int.self) != length + 1 {
            throw ProtoDecodingError(field: field, reason: "string field contains a NUL character")
        }
        // `String(decoding:)` validates on the standard library's fast path and repairs what is
        // invalid, so the bytes come back unchanged exactly when they were valid UTF-8. (The
        // generic `String(validating:as:)` cost ~1,000 instructions per field, a run-time
        // metadata lookup among them.)
        let bytes = UnsafeBufferPointer(start: raw.assumingMemoryBound(to: UInt8.self), count: length)
        var s = String(decoding: bytes, as: UTF8.self)
        let unchanged = s.withUTF8 { $0.count == length && memcmp($0.baseAddress!, raw, length) == 0 }
        guard unchanged else {
            throw ProtoDecodingError(field: field, reason: "string field is not valid UTF-8")
        }
        return s
    }

    /// A `bytes` field.
    @inlinable
    public static func bytes(_ b: ProtobufCBinaryData) -> [UInt8] {
        guard b.len > 0, let data = b.data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: b.len))
    }

    /// An enum field: unknown values are refused.
    @inlinable
    public static func enumValue<E: ProtoEnum>(_ raw: UInt32, as type: E.Type, field: String) throws(ProtoDecodingError) -> E {
        guard let value = E(rawValue: Int32(bitPattern: raw)) else {
            throw ProtoDecodingError(field: field, reason: "unknown \(E.self) value \(Int32(bitPattern: raw))")
        }
        return value
    }
}
