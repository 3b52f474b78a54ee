import Foundation
import SessionCore
import Testing

@testable import SessionStorage

@Suite("The journal file and the journaled SQLite store")
struct JournalTests {
    static func batch(_ i: Int) -> JournalBatch {
        var b = JournalBatch()
        b.record(Fixtures.plainChannel("ch\(i)"))
        b.record(setting: "k\(i)", Int64(i))
        return b
    }

    @Test("Every field of every row kind survives the codec; a damaged record is refused, not guessed")
    func codecRoundTrip() throws {
        var b = JournalBatch()
        b.record(Fixtures.fullChannel("web"))
        b.record(Fixtures.plainChannel("sms"))
        b.record(Fixtures.rep("r1"))
        b.record(Fixtures.fullSession("s1", conversation: "c1", channel: "web", rep: "r1"))
        b.record(Session(id: "s2", conversationId: "c2", channelId: "web", status: .waiting, createdAt: Fixtures.t0, updatedAt: Fixtures.t0))
        b.record(Event(cursor: 7, sessionId: "s1", sequence: 2, time: Fixtures.t0, actor: .rep("r1"), from: .active, to: .inactive,
                       repId: "r1", reason: .markedInactive))
        b.record(Event(cursor: 8, sessionId: "s2", sequence: 1, time: Fixtures.t0, actor: .system, from: nil, to: .waiting,
                       repId: nil, reason: .created))
        b.record(Message(messageId: "m1", channelId: "web", sessionId: "s1", sender: .customer, text: "héllo — Zoë", time: Fixtures.t0))
        b.record(setting: "x", -5)
        let bytes = JournalCodec.encode(b)
        let back = try JournalCodec.decode(bytes[...])
        #expect(back.channels == b.channels && back.reps == b.reps && back.sessions == b.sessions)
        #expect(back.events == b.events && back.messages == b.messages && back.settings == b.settings)
        for cut in [1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: JournalCodec.Corrupt.self) { _ = try JournalCodec.decode(bytes.prefix(cut)) }
        }
        var huge = bytes
        huge[1] = 0xff; huge[2] = 0xff; huge[3] = 0xff; huge[4] = 0x7f  // a channel count no record could hold
        #expect(throws: JournalCodec.Corrupt.self) { _ = try JournalCodec.decode(huge[...]) }
    }

    @Test("A torn record at the end of the newest file is cut off; one in an older file is damage", arguments: [false, true])
    func tornTail(preallocated: Bool) throws {
        try TemporaryDirectory.with { dir in
            let journal = FileJournal(directory: dir.path, syncs: preallocated, rotateBytes: 1 << 20)
            _ = try journal.recover(after: 0)
            var used = 0
            for i in 1...3 {
                let payload = JournalCodec.encode(Self.batch(i))
                used += FileJournal.headerBytes + payload.count
                #expect(try journal.append(payload) == UInt64(i))
            }
            let file = journal.files().last!.path
            let whole = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(whole.count == (preallocated ? 1 << 20 : used))
            #expect(whole[used...].allSatisfy { $0 == 0 })
            // A crash in the middle of the fourth write (after the third record, over the zeros
            // of a preallocated file).
            let handle = FileHandle(forWritingAtPath: file)!
            handle.seek(toFileOffset: UInt64(used))
            handle.write(Data([0x40, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]))
            try handle.close()
            // A reader (sessiond backup) sees the same records and changes nothing.
            let torn = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(try FileJournal(directory: dir.path, syncs: false).read(after: 1).map(\.sequence) == [2, 3])
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == torn)
            let again = FileJournal(directory: dir.path, syncs: false)
            #expect(try again.recover(after: 1).map(\.sequence) == [2, 3])
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == whole[..<used])
            // Appends continue after the highest sequence, in a new file.
            #expect(try again.append(JournalCodec.encode(Self.batch(4))) == 4)
            #expect(again.files().count == 2)
            #expect(try FileJournal(directory: dir.path, syncs: false).recover(after: 0).map(\.sequence) == [1, 2, 3, 4])
            // Now the older file is damaged inside a record: recovery refuses.
            var bytes = [UInt8](whole[..<used])
            bytes[FileJournal.headerBytes + 2] ^= 0xff
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            #expect(throws: FileJournal.Damaged.self) { _ = try FileJournal(directory: dir.path, syncs: false).recover(after: 0) }
            // Or after its last record, in the zeros: damage too (nothing is written there).
            bytes = [UInt8](whole)
            bytes[bytes.count - 1] = 7
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            #expect(throws: FileJournal.Damaged.self) { _ = try FileJournal(directory: dir.path, syncs: false).recover(after: 0) }
        }
    }

    @Test("A preallocated journal rotates into a spare made in the background, and every record is recovered in order")
    func preallocatedRotation() throws {
        try TemporaryDirectory.with { dir in
            let journal = FileJournal(directory: dir.path, syncs: true, rotateBytes: 8 << 10)
            _ = try journal.recover(after: 0)
            var sizes: [Int] = []
            for i in 1...200 {
                let payload = JournalCodec.encode(Self.batch(i))
                sizes.append(payload.count)
                #expect(try journal.append(payload) == UInt64(i))
            }
            // One record larger than a whole file gets a file of its own size.
            let big = [UInt8](repeating: 0xAB, count: 20 << 10)
            #expect(try journal.append(big) == 201)
            let files = journal.files()
            #expect(files.count > 2)
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            // (a spare may be on its way in the background: `.partial` is not checked)
            #expect(!names.contains { $0.hasSuffix(".now") })
            for file in files {
                var info = stat()
                #expect(stat(file.path, &info) == 0 && info.st_mode & 0o777 == 0o600)
            }
            let records = try FileJournal(directory: dir.path, syncs: true).recover(after: 0)
            #expect(records.map(\.sequence) == Array(1...201))
            #expect(Array(records.last!.payload) == big)
        }
    }

    @Test("Batches durable only in the journal reach the tables at the next start; the files go once applied")
    func recoveryAppliesTheJournal() throws {
        try withStore { store, dir in
            let first = JournaledSQLiteStore(store: store, directory: dir.path, syncs: false)
            first.materializeDelayMillis = 600_000  // "killed" before the materializer ran
            _ = try first.loadPartition()
            for i in 1...5 { try first.commit(Self.batch(i)) }
            #expect(try store.read { (r: SQLiteRepository) in try r.channels(after: nil, limit: 10) }.isEmpty)

            let second = JournaledSQLiteStore(store: store, directory: dir.path, syncs: false)
            let snapshot = try second.loadPartition()
            #expect(snapshot.channels.map(\.id).sorted() == ["ch1", "ch2", "ch3", "ch4", "ch5"])
            #expect(snapshot.settings["journal_applied_seq"] == 5)
            // A third start applies nothing twice.
            let third = JournaledSQLiteStore(store: store, directory: dir.path, syncs: false)
            #expect(try third.loadPartition().channels.count == 5)
            try third.commit(Self.batch(6))
            try third.flush()
            #expect(try store.read { (r: SQLiteRepository) in try r.setting("journal_applied_seq") } == 6)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("journal-") }
            #expect(files.count == 1, "\(files)")  // only the file being written
        }
    }

    @Test("A backup holds what only the journal has, leaves the live files alone, and never overwrites")
    func backupAppliesTheJournal() throws {
        try withStore { store, dir in
            let live = JournaledSQLiteStore(store: store, directory: dir.path, syncs: true)
            live.materializeDelayMillis = 600_000  // the tables lag: everything is in the journal only
            _ = try live.loadPartition()
            for i in 1...5 { try live.commit(Self.batch(i)) }
            let journalBefore = try live.journalFiles().map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
            let copy = dir.path + "/copy.sqlite"
            let result = try DataDirectoryBackup.run(dataDirectory: dir.path, to: copy)
            #expect(result.sequence == 5 && result.journalRecords == 5)
            #expect(try live.journalFiles().map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == journalBefore)
            let restored = try SQLiteStore(path: copy)
            #expect(try restored.read { (r: SQLiteRepository) in try r.channels(after: nil, limit: 10) }.map(\.id).sorted() == ["ch1", "ch2", "ch3", "ch4", "ch5"])
            #expect(try restored.read { (r: SQLiteRepository) in try r.setting("journal_applied_seq") } == 5)
            #expect(throws: (any Error).self) { _ = try DataDirectoryBackup.run(dataDirectory: dir.path, to: copy) }
        }
    }

    @Test("A journal that does not continue the database (a gap) is refused at start; set aside, the database starts as it is")
    func gapIsRefused() throws {
        try withStore { store, dir in
            let journal = FileJournal(directory: dir.path, syncs: false)
            _ = try journal.recover(after: 0)
            // Records 1...3 exist in the journal, but the database says nothing was applied and
            // the file holding 1...2 is gone: simulate by writing records 1...3 and applying "1" only.
            for i in 1...3 { _ = try journal.append(JournalCodec.encode(Self.batch(i))) }
            try store.write { (r: SQLiteRepository) in try r.setSetting("journal_applied_seq", 0) }
            // A database restored from a backup newer than nothing but older than the journal's start:
            let later = FileJournal(directory: dir.path, syncs: false, rotateBytes: 1)
            _ = try later.recover(after: 0)
            _ = try later.append(JournalCodec.encode(Self.batch(4)))  // a second file, starting at 4
            for file in later.files().dropLast() { unlink(file.path) }  // the file with 1...3 is lost
            let refused = #expect(throws: (any Error).self) { _ = try JournaledSQLiteStore(store: store, directory: dir.path, syncs: false).loadPartition() }
            #expect("\(refused.map { "\($0)" } ?? "")".contains("starts at batch 4 but the database holds batches up to 0"))
            #expect(StoreErrorKind.of(refused!) == .damaged)
            #expect(JournaledSQLiteStore.setAsideJournal(in: dir.path).count == 1)
            #expect(try JournaledSQLiteStore(store: store, directory: dir.path, syncs: false).loadPartition().channels.isEmpty)
        }
    }

    @Test("The last event sequences of many sessions come in one read, quotes and absent sessions included")
    func lastSequencesInOneRead() throws {
        try TemporaryDirectory.with { dir in
            let store = try SQLiteStore(path: dir.path + "/sessions.sqlite")
            var b = JournalBatch()
            b.record(Fixtures.plainChannel("web"))
            let ids = ["s1", "s\"2", "s\\3"]
            for (i, id) in ids.enumerated() {
                b.record(Session(id: id, conversationId: "c\(i)", channelId: "web", status: .waiting, createdAt: Fixtures.t0, updatedAt: Fixtures.t0))
                for sequence in 1...(i + 1) {
                    b.record(Event(cursor: Int64(10 * i + sequence), sessionId: id, sequence: Int64(sequence), time: Fixtures.t0, actor: .system,
                                   from: nil, to: .waiting, repId: nil, reason: .created))
                }
            }
            try store.commit(b)
            #expect(try store.lastSequences(sessionIds: ids + ["absent"]) == ["s1": 1, "s\"2": 2, "s\\3": 3])
            #expect(try store.lastSequences(sessionIds: []) == [:])
            for (i, id) in ids.enumerated() { #expect(try store.lastSequence(sessionId: id) == Int64(i + 1)) }
        }
    }
}
