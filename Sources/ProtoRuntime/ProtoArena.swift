public import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// Owns every C allocation made while building a protobuf-c message from
/// Swift values, and frees them all at once when released.
///
/// Not thread-safe: an arena lives within one serialization.
public final class ProtoArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    public init() {
        blocks.reserveCapacity(8)
    }

    deinit {
        for block in blocks { free(block) }
    }

    /// Uninitialised memory for `count` values of `T`.
    public func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let size = max(1, MemoryLayout<T>.stride * count)
        guard let raw = malloc(size) else { fatalError("out of memory allocating \(size) bytes") }
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy of `string`.
    public func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        var string = string
        return string.withUTF8 { utf8 in
            let p = allocate(CChar.self, count: utf8.count + 1)
            if let base = utf8.baseAddress {
                memcpy(p, base, utf8.count)
            }
            p[utf8.count] = 0
            return p
        }
    }

    /// A protobuf-c `bytes` value holding a copy of `bytes`.
    public func binaryData(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(UInt8.self, count: bytes.count)
        _ = bytes.withUnsafeBufferPointer { memcpy(p, $0.baseAddress!, bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }
}
