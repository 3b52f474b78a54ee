internal import Foundation
import Synchronization

#if canImport(Glibc)
internal import Glibc
#endif

/// An append-only log of journal batches in the data directory: `journal-<first seq, hex>.log`
/// files, 0600, each a run of records
///
///     u32 payload length · u64 sequence · u64 FNV-1a of (sequence, payload) · payload
///
/// (little-endian). `append` writes one record with one `write` and, under full durability,
/// `fdatasync`s before it returns: that is the moment a batch is durable. A crash can leave a torn
/// record at the end of the newest file; recovery drops it (it was never acknowledged). A bad
/// record anywhere else is damage, and recovery refuses to guess.
final class FileJournal: @unchecked Sendable {
    struct Damaged: Error, CustomStringConvertible {
        let description: String
    }

    let directory: String
    let syncs: Bool
    /// A file is closed and a new one started once it holds this many bytes.
    let rotateBytes: Int

    // Touched by the appending thread only (one at a time: the owner's journal queue).
    private var fd: Int32 = -1
    private var fileBytes = 0
    private var nextSequence: UInt64 = 1

    private static let headerBytes = 20

    init(directory: String, syncs: Bool, rotateBytes: Int = 64 << 20) {
        self.directory = directory
        self.syncs = syncs
        self.rotateBytes = rotateBytes
    }

    deinit { if fd >= 0 { close(fd) } }

    private static func name(_ first: UInt64) -> String {
        let hex = String(first, radix: 16)
        return "journal-" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".log"
    }

    /// The journal files, oldest first, with the first sequence each may hold.
    func files() -> [(first: UInt64, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("journal-"), name.hasSuffix(".log") else { return nil }
            let hex = name.dropFirst("journal-".count).dropLast(".log".count)
            guard let first = UInt64(hex, radix: 16) else { return nil }
            return (first, directory + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    /// Every intact record with a sequence above `after`, in order; truncates a torn tail of the
    /// newest file. Afterwards, appends continue after the highest sequence seen (or `after`).
    func recover(after: UInt64) throws -> [(sequence: UInt64, payload: ArraySlice<UInt8>)] {
        var records: [(UInt64, ArraySlice<UInt8>)] = []
        var highest = after
        let all = files()
        for (index, file) in all.enumerated() {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                throw Damaged(description: "cannot read \(file.path)")
            }
            let bytes = [UInt8](data)
            var offset = 0
            while offset < bytes.count {
                guard let (sequence, payload, next) = Self.record(in: bytes, at: offset) else {
                    guard index == all.count - 1 else {
                        throw Damaged(description: "\(file.path) has a bad record at byte \(offset), and newer journal files follow it")
                    }
                    // A torn write at the end of the newest file: it was never acknowledged.
                    guard truncate(file.path, off_t(offset)) == 0 else {
                        throw Damaged(description: "cannot cut the torn tail of \(file.path): \(String(cString: strerror(errno)))")
                    }
                    break
                }
                if sequence > highest { highest = sequence }
                if sequence > after { records.append((sequence, payload)) }
                offset = next
            }
        }
        nextSequence = highest + 1
        return records
    }

    private static func record(in bytes: [UInt8], at offset: Int) -> (UInt64, ArraySlice<UInt8>, Int)? {
        guard bytes.count - offset >= headerBytes else { return nil }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        let length = (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
        let sequence = u64(offset + 4)
        let checksum = u64(offset + 12)
        let start = offset + headerBytes
        guard length >= 0, bytes.count - start >= length else { return nil }
        let payload = bytes[start..<start + length]
        guard checksum == Self.checksum(sequence, payload) else { return nil }
        return (sequence, payload, start + length)
    }

    private static func checksum(_ sequence: UInt64, _ payload: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var s = sequence
        for _ in 0..<8 { hash = (hash ^ (s & 0xff)) &* 0x100_0000_01b3; s >>= 8 }
        for byte in payload { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// Appends one record and returns its sequence; durable on return when `syncs`.
    func append(_ payload: [UInt8]) throws -> UInt64 {
        if fd < 0 || fileBytes >= rotateBytes { try startFile() }
        let sequence = nextSequence
        var record = [UInt8]()
        record.reserveCapacity(Self.headerBytes + payload.count)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { record.append(contentsOf: $0) }
        withUnsafeBytes(of: sequence.littleEndian) { record.append(contentsOf: $0) }
        withUnsafeBytes(of: Self.checksum(sequence, payload[...]).littleEndian) { record.append(contentsOf: $0) }
        record.append(contentsOf: payload)
        try record.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Damaged(description: "journal write failed: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
        if syncs, fdatasync(fd) != 0 {
            throw Damaged(description: "journal fdatasync failed: \(String(cString: strerror(errno)))")
        }
        fileBytes += record.count
        nextSequence += 1
        return sequence
    }

    private func startFile() throws {
        if fd >= 0 { close(fd); fd = -1 }
        let path = directory + "/" + Self.name(nextSequence)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw Damaged(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        fd = descriptor
        var info = stat()
        fileBytes = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        if syncs { syncDirectory() }
    }

    private func syncDirectory() {
        let d = open(directory, O_RDONLY)
        if d >= 0 { _ = fsync(d); close(d) }
    }

    /// Removes the files whose every record has a sequence `<= through` (never the one being written).
    func discard(through: UInt64) {
        let all = files()
        for (index, file) in all.enumerated() where index + 1 < all.count {
            // Every record of this file is below the next file's first sequence.
            if all[index + 1].first - 1 <= through { unlink(file.path) }
        }
    }
}
