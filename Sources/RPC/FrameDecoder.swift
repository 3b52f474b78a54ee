/// Splits a byte stream into frames: a 4-byte big-endian length, then that
/// many bytes.
///
/// The length is checked against `maxFrameSize` before any payload is
/// buffered, so a peer's length field never drives an allocation over the
/// limit. Feed it bytes in any split; it hands out every complete frame.
public struct FrameDecoder: Sendable {
    /// What a peer did wrong.
    public enum Failure: Error, Equatable, Sendable {
        case frameTooLarge(length: UInt32, limit: Int)
    }

    public let maxFrameSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes received but not yet handed out as a frame.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// True when part of a frame has been received.
    public var hasPartialFrame: Bool { bufferedByteCount > 0 }

    /// Whether bytes of another frame are buffered behind the next complete one (or, with no
    /// complete frame buffered, whether anything is): nothing is consumed.
    public var hasMoreAfterNextFrame: Bool {
        guard let length = nextFrameLength else { return bufferedByteCount > 0 }
        return bufferedByteCount > 4 + length
    }

    /// The length the next frame's header announces, nil until its 4 bytes are buffered.
    private var nextFrameLength: Int? {
        guard buffer.count - readIndex >= 4 else { return nil }
        return buffer.withUnsafeBufferPointer { p in
            Int(p[readIndex]) << 24 | Int(p[readIndex + 1]) << 16 | Int(p[readIndex + 2]) << 8 | Int(p[readIndex + 3])
        }
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Calls `body` with the next complete frame's payload and returns its
    /// result, or returns nil when no complete frame is buffered. The buffer
    /// pointer is valid only during the call.
    public mutating func withNextFrame<T>(_ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        let available = buffer.count - readIndex
        guard let announced = nextFrameLength else { return nil }
        let length = UInt32(announced)
        guard Int(length) <= maxFrameSize else {
            throw Failure.frameTooLarge(length: length, limit: maxFrameSize)
        }
        guard available >= 4 + Int(length) else {
            buffer.reserveCapacity(readIndex + 4 + Int(length))
            return nil
        }
        let start = readIndex + 4
        readIndex = start + Int(length)
        let result = try buffer.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + Int(length))]))
        }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            readIndex = 0
        }
        return result
    }

    /// Calls `body` with each complete frame's payload, in order.
    public mutating func forEachFrame(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while try withNextFrame(body) != nil {}
    }

    /// Collects complete frames as arrays (convenient for tests and clients).
    public mutating func nextFrames() throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        try forEachFrame { frames.append(Array($0)) }
        return frames
    }

    private mutating func compactIfUseful() {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}

/// Appends the 4-byte big-endian length of a frame of `length` bytes.
@inlinable
public func appendFrameHeader(_ length: Int, to out: inout [UInt8]) {
    let n = UInt32(length)
    out.append(UInt8(truncatingIfNeeded: n >> 24))
    out.append(UInt8(truncatingIfNeeded: n >> 16))
    out.append(UInt8(truncatingIfNeeded: n >> 8))
    out.append(UInt8(truncatingIfNeeded: n))
}
