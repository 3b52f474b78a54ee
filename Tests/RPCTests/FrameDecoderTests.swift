import RPC
import Testing

@Suite("FrameDecoder")
struct FrameDecoderTests {
    /// Frames of these sizes, each filled with a byte that names it.
    static func frames(_ sizes: [Int]) -> [[UInt8]] {
        sizes.enumerated().map { i, size in [UInt8](repeating: UInt8(truncatingIfNeeded: i &* 37 &+ 1), count: size) }
    }

    static func wire(_ frames: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for f in frames {
            appendFrameHeader(f.count, to: &out)
            out += f
        }
        return out
    }

    @Test("the length header is 4 bytes, big-endian")
    func headerIsBigEndian() {
        var out: [UInt8] = [0xAA]
        appendFrameHeader(0x0102_0304, to: &out)
        #expect(out == [0xAA, 0x01, 0x02, 0x03, 0x04])
        out = []
        appendFrameHeader(0, to: &out)
        #expect(out == [0, 0, 0, 0])
    }

    @Test("hasMoreAfterNextFrame: whether anything is buffered behind the next complete frame, consuming nothing")
    func moreAfterNextFrame() throws {
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        #expect(!decoder.hasMoreAfterNextFrame)
        let wire = Self.wire(Self.frames([5, 0, 7]))
        decoder.append(Array(wire.prefix(2)))                 // part of a header
        #expect(decoder.hasMoreAfterNextFrame)
        decoder.append(Array(wire[2..<9]))                    // exactly the first frame
        #expect(!decoder.hasMoreAfterNextFrame)
        decoder.append(Array(wire[9..<10]))                   // one byte of the next
        #expect(decoder.hasMoreAfterNextFrame)
        #expect(try decoder.withNextFrame { $0.count } == 5)
        decoder.append(Array(wire[10...]))                    // the empty frame, then the last
        #expect(decoder.hasMoreAfterNextFrame)
        #expect(try decoder.withNextFrame { $0.count } == 0)
        #expect(!decoder.hasMoreAfterNextFrame)
        #expect(try decoder.withNextFrame { $0.count } == 7)
        #expect(!decoder.hasMoreAfterNextFrame)
    }

    @Test("fed one byte at a time, it yields every frame once, in order")
    func oneByteAtATime() throws {
        let expected = Self.frames([0, 1, 300, 0, 70_000, 5])
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var got: [[UInt8]] = []
        for byte in Self.wire(expected) {
            decoder.append([byte])
            got += try decoder.nextFrames()
        }
        #expect(got == expected)
        #expect(decoder.bufferedByteCount == 0)
        #expect(!decoder.hasPartialFrame)
    }

    @Test("many frames in one append all come out")
    func manyFramesInOneAppend() throws {
        let expected = Self.frames((0..<1000).map { $0 % 97 })
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.append(Self.wire(expected))
        #expect(try decoder.nextFrames() == expected)
        #expect(try decoder.nextFrames().isEmpty)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("arbitrary splits, including headers split across appends", arguments: [1, 2, 3, 5, 7, 777, 4096])
    func arbitrarySplits(chunk: Int) throws {
        let expected = Self.frames((0..<300).map { ($0 * 131) % 2000 })
        let wire = Self.wire(expected)
        var decoder = FrameDecoder(maxFrameSize: 4096)
        var got: [[UInt8]] = []
        var i = 0
        var step = chunk
        while i < wire.count {
            let end = min(wire.count, i + step)
            decoder.append(Array(wire[i..<end]))
            got += try decoder.nextFrames()
            i = end
            step = step % 11 == 0 ? chunk : step + 1  // vary the split points
        }
        #expect(got == expected)
        #expect(!decoder.hasPartialFrame)
    }

    @Test("a length over the limit is refused from the header alone, before any payload")
    func oversizedLengthRefusedEarly() throws {
        var decoder = FrameDecoder(maxFrameSize: 16)
        decoder.append([0, 0, 0, 17])
        #expect(throws: FrameDecoder.Failure.frameTooLarge(length: 17, limit: 16)) {
            try decoder.nextFrames()
        }
        var huge = FrameDecoder(maxFrameSize: 4 * 1024 * 1024)
        huge.append([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: FrameDecoder.Failure.frameTooLarge(length: 0xFFFF_FFFF, limit: 4 * 1024 * 1024)) {
            try huge.nextFrames()
        }
    }

    @Test("a frame of exactly the limit is accepted")
    func frameAtLimit() throws {
        var decoder = FrameDecoder(maxFrameSize: 16)
        let frame = [UInt8](repeating: 7, count: 16)
        decoder.append(Self.wire([frame]))
        #expect(try decoder.nextFrames() == [frame])
    }

    @Test("frames before an oversized one are still handed out")
    func framesBeforeOversized() throws {
        var decoder = FrameDecoder(maxFrameSize: 8)
        decoder.append(Self.wire([[1, 2, 3]]) + [0, 0, 1, 0])
        var got: [[UInt8]] = []
        #expect(throws: FrameDecoder.Failure.self) {
            try decoder.forEachFrame { got.append(Array($0)) }
        }
        #expect(got == [[1, 2, 3]])
    }

    @Test("a truncated frame stays pending until its last byte arrives")
    func truncatedFrameStaysPending() throws {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        let frame: [UInt8] = Array(0..<10)
        let wire = Self.wire([frame])
        decoder.append(Array(wire[0..<9]))
        #expect(try decoder.nextFrames().isEmpty)
        #expect(decoder.hasPartialFrame)
        #expect(decoder.bufferedByteCount == 9)
        decoder.append(Array(wire[9..<13]))
        #expect(try decoder.nextFrames().isEmpty)
        #expect(decoder.bufferedByteCount == 13)
        decoder.append([wire[13]])
        #expect(try decoder.nextFrames() == [frame])
        #expect(!decoder.hasPartialFrame)
    }

    @Test("a lone partial header is pending, not a frame")
    func partialHeader() throws {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.append([0, 0])
        #expect(try decoder.nextFrames().isEmpty)
        #expect(decoder.hasPartialFrame)
    }

    @Test("zero-length frames are frames")
    func zeroLengthFrames() throws {
        var decoder = FrameDecoder(maxFrameSize: 0)
        decoder.append([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let frames = try decoder.nextFrames()
        #expect(frames.count == 3)
        #expect(frames == [[], [], []])
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("a long stream with partial frames left over between appends keeps every byte")
    func longStreamCompaction() throws {
        // Exercises the buffer's compaction: every append leaves a partial frame behind.
        var decoder = FrameDecoder(maxFrameSize: 2048)
        var generator = SplitMix(seed: 42)
        var expected: [[UInt8]] = []
        for _ in 0..<2000 {
            let size = Int(generator.next() % 1500)
            expected.append((0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
        let wire = Self.wire(expected)
        var got: [[UInt8]] = []
        var i = 0
        while i < wire.count {
            let end = min(wire.count, i + 1 + Int(generator.next() % 3000))
            decoder.append(Array(wire[i..<end]))
            try decoder.forEachFrame { got.append(Array($0)) }
            i = end
        }
        #expect(got.count == expected.count)
        #expect(got == expected)
    }
}

/// A small deterministic random generator (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
