public import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// Owns every C allocation made while building a protobuf-c message from
/// Swift values, and frees them all at once when released.
///
/// A bump allocator: small allocations come from one inline-sized block
/// (most messages need no further `malloc`); larger ones get blocks of their
/// own. Not thread-safe: an arena lives within one serialization.
public final class ProtoArena {
    private static let blockSize = 1024
    private var block: UnsafeMutableRawPointer?
    private var used = 0
    private var extra: [UnsafeMutableRawPointer] = []

    public init() {}

    deinit {
        if let block { free(block) }
        for b in extra { free(b) }
    }

    /// Uninitialised memory for `count` values of `T`.
    public func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let size = max(1, MemoryLayout<T>.stride * count)
        let align = max(16, MemoryLayout<T>.alignment)
        if size <= Self.blockSize / 4 {
            if block == nil {
                guard let b = malloc(Self.blockSize) else { fatalError("out of memory allocating \(Self.blockSize) bytes") }
                block = b
            }
            let start = (used + align - 1) & ~(align - 1)
            if start + size <= Self.blockSize {
                used = start + size
                return (block! + start).bindMemory(to: T.self, capacity: count)
            }
        }
        guard let raw = malloc(size) else { fatalError("out of memory allocating \(size) bytes") }
        extra.append(raw)
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
