public import CProtobufC

/// Conversions from protobuf-c values used by generated code.
public enum ProtoC {
    /// A `string` field: must be valid UTF-8.
    @inlinable
    public static func string(_ p: UnsafeMutablePointer<CChar>?, field: String) throws(ProtoDecodingError) -> String {
        guard let p, p.pointee != 0 else { return "" }
        guard let s = String(validatingCString: p) else {
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
