// session-sweep-bench - the timer sweeper's cost: N open sessions with timers, M of them due at once.
//
// 1. Setup (not measured): a fresh store in a temporary directory, bulk-loaded through the
//    repository API in large transactions (synchronous OFF while loading): one channel, a few reps,
//    N sessions INACTIVE with an auto-end deadline, M of them due within the last minute, the rest 1 to
//    25 hours in the future; each session has the event that made it INACTIVE, so events are appended
//    after an existing history. `--layout time-ordered` (default) orders ids, rows and deadlines by
//    creation time like production ids, so the due sessions are the oldest; `--layout spread` makes
//    every (N/M)-th id due (each fired session then dirties pages of its own: the worst case).
// 2. Measured (`--engine owner`, the default: sessiond's path on either store): the store is reopened
//    with the daemon's settings and loaded into a `PartitionOwner` (timed apart as partition_load_s:
//    what a restart costs; rss_loaded_mb is memory with every session in it), which fires every due
//    timer from its heap at once; seconds = from the owner's start until every due timer has fired
//    durably (the owner holds no due session and its journal holds the transitions); tables_s = until
//    the SQLite tables (which the materializer writes behind the journal) hold them too (on
//    PostgreSQL the journal is the tables: one statement per batch on the partition lock's connection).
//    Measured (`--engine sweeper`: the store-per-call path): the store is reopened with the daemon's settings (`--durability`, default `full`, like
//    `sessiond`), a real `TimerSweeper` over a `SessionBackend` is started (it sweeps at once, then
//    every interval, in batches of `--sweep-batch` sessions per transaction) and the main thread
//    polls, every few milliseconds, on its own read connection, whether any due deadline is left, and
//    samples VmRSS. Time = from `start()` until no session due at setup time is left unfired.
// 3. Checks: exactly M sessions ENDED with reason AUTO_ENDED and M AUTO_ENDED events, and all N - M
//    future sessions still INACTIVE with their deadline.
//
// Output: one line
//   sweep store=sqlite sessions=N due=M fired=M seconds=S transitions_per_s=R rss_before_mb=..
//   rss_peak_during_mb=.. rss_after_mb=.. hwm_during_mb=.. load_s=.. load=repository|bulk check=ok
// `check=FAILED(...)` and exit status 1 when a check fails.
//
// Stores (each a `SweepBenchStore`):
// - `--store sqlite`: a fresh database file in `--dir` (default: a temporary directory).
// - `--store postgres://USER@HOST:PORT/DB`: DB must exist and be empty (no table in schema public;
//   the benchmark creates the schema with the store's migrations and drops its tables again at the
//   end unless `--keep`). The load (`--load-mode bulk`, the default) sends `--load-batch` sessions
//   and their events per multi-row `INSERT ... SELECT FROM unnest(<arrays>)` statement, one
//   transaction per batch, synchronous_commit off; `--load-mode repository` goes through
//   PostgresStore's repository instead (insertSession + appendEvent: two round trips per session,
//   much slower). After the load: VACUUM ANALYZE of the two tables (what autovacuum would have done
//   after such a load) and a CHECKPOINT, so the measured part neither plans on empty statistics nor
//   competes with the load's checkpoint. The measured part opens a `PostgresStore` like `sessiond`
//   (`--durability full`: synchronous_commit on). RSS is this process's only (the server's memory
//   is not in it).
import Dispatch
import Foundation
import Logging
import SessionCore
import SessionServer
import SessionState
import SessionStorage

#if canImport(Glibc)
import Glibc
#endif

// MARK: Options

struct Options {
    enum StoreChoice {
        case sqlite
        case postgres(url: String)
    }

    var store = StoreChoice.sqlite
    var sessions = 1_000_000
    var due = 100_000
    var sweepBatch = 256
    var intervalMillis = 1000
    var durability = SQLiteStore.Options.Durability.full
    var loadBatch = 50_000
    var directory: String?
    var keep = false
    var loadOnly = false
    var layout = Population.Layout.timeOrdered
    var timeoutSeconds = 600.0
    var loadMode = LoadMode.bulk
    /// `owner` (default): sessiond's path (the partition loaded into a state owner, timers fired
    /// from its heap); `sweeper`: the store-polling TimerSweeper (the store-per-call path).
    var engine: String?

    /// How the PostgreSQL store is loaded (SQLite always goes through its repository).
    enum LoadMode: String {
        case bulk
        case repository
    }

    static let usage = """
        usage: session-sweep-bench [--store sqlite|postgres://USER@HOST:PORT/DB] [--sessions 1000000] [--due 100000]
                                   [--sweep-batch 256] [--interval-ms 1000] [--durability full|process-crash]
                                   [--layout time-ordered|spread] [--load-batch 50000] [--dir DIR] [--keep]
                                   [--load-only] [--timeout 600] [--engine owner|sweeper] [--load-mode bulk|repository (postgres)]
        """

    static func parse(_ arguments: [String]) -> Options {
        var o = Options()
        var i = 0
        func value(_ name: String) -> String {
            i += 1
            guard i < arguments.count else { fail("missing value for \(name)") }
            return arguments[i]
        }
        func int(_ name: String) -> Int {
            let text = value(name).replacingOccurrences(of: "_", with: "")
            guard let n = Int(text), n >= 0 else { fail("\(name) wants a non-negative integer") }
            return n
        }
        while i < arguments.count {
            let a = arguments[i]
            switch a {
            case "--store":
                let v = value(a)
                if v == "sqlite" {
                    o.store = .sqlite
                } else if v.hasPrefix("postgres://") || v.hasPrefix("postgresql://") {
                    o.store = .postgres(url: v)
                } else {
                    fail("--store: sqlite or postgres://… (got \(v))")
                }
            case "--sessions": o.sessions = int(a)
            case "--due": o.due = int(a)
            case "--sweep-batch": o.sweepBatch = max(1, int(a))
            case "--interval-ms": o.intervalMillis = max(10, int(a))
            case "--load-batch": o.loadBatch = max(1, int(a))
            case "--durability":
                switch value(a) {
                case "full": o.durability = .full
                case "process-crash": o.durability = .processCrash
                case "none": o.durability = .none
                default: fail("--durability: full, process-crash or none")
                }
            case "--dir": o.directory = value(a)
            case "--keep": o.keep = true
            case "--load-only": o.loadOnly = true; o.keep = true
            case "--layout":
                switch value(a) {
                case "time-ordered": o.layout = .timeOrdered
                case "spread": o.layout = .spread
                default: fail("--layout: time-ordered or spread")
                }
            case "--timeout": o.timeoutSeconds = Double(value(a)) ?? 600
            case "--engine":
                let e = value(a)
                guard e == "owner" || e == "sweeper" else { fail("--engine is owner or sweeper, not \(e)") }
                o.engine = e
            case "--load-mode":
                guard let mode = LoadMode(rawValue: value(a)) else { fail("--load-mode: bulk or repository") }
                o.loadMode = mode
            case "-h", "--help": print(usage); exit(0)
            default: fail("unknown argument \(a)")
            }
            i += 1
        }
        guard o.due <= o.sessions, o.sessions > 0 else { fail("need 0 < --sessions and --due <= --sessions") }
        return o
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("session-sweep-bench: \(message)\n\(Options.usage)\n".utf8))
    exit(2)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("[sweep-bench] \(message)\n".utf8))
}

// MARK: The population

/// What the setup loads, and how to tell due from future sessions.
struct Population {
    /// Where the due sessions sit among all sessions.
    enum Layout: String {
        /// Like production ids (`ses_` + creation time + random): ids, rows and deadlines follow creation
        /// time, so the sessions due now are the oldest ones, next to each other in the id order.
        case timeOrdered = "time-ordered"
        /// Adversarial: every (N/M)-th id is due, deadlines scattered: each fired session touches pages
        /// of its own in every index.
        case spread
    }

    let sessions: Int
    let due: Int
    let layout: Layout
    /// Every due deadline is <= this instant, every future one is > it.
    let cutoff: Timestamp
    let channel = Channel(id: "sweep-web", type: .enhancedWebChatV2, capacityModel: .tabBased)
    let repCount = 100

    func isDue(_ i: Int) -> Bool {
        guard due > 0 else { return false }
        switch layout {
        case .timeOrdered: return i < due
        case .spread: return (i + 1) * due / sessions > i * due / sessions
        }
    }

    func sessionID(_ i: Int) -> String { "ses_sweep_" + String(i).leftPadded(to: 8) }
    func repID(_ i: Int) -> String { "sweep-rep-" + String((i &* 37) % repCount).leftPadded(to: 3) }
    /// Conversation ids are the channel integration's: unrelated to the session order.
    func conversationID(_ i: Int) -> String { "conv-" + String(UInt64(i) &* 0x9E37_79B9_7F4A_7C15, radix: 36) }

    /// Due: within the minute before the cutoff; future: 1 to 25 hours after it.
    func deadline(_ i: Int) -> Timestamp {
        switch layout {
        case .timeOrdered:
            if isDue(i) { return cutoff - Milliseconds(60_000 - Int64(i) * 60_000 / Int64(max(1, due))) }
            let rank = Int64(i - due), span = Int64(max(1, sessions - due))
            return cutoff + Milliseconds(3_600_000 + rank * 86_400_000 / span)
        case .spread:
            return isDue(i)
                ? cutoff - Milliseconds(Int64((i &* 7919) % 60_000))
                : cutoff + Milliseconds(3_600_000 + Int64((i &* 104_729) % 86_400_000))
        }
    }

    func session(_ i: Int) -> Session {
        let deadline = deadline(i)
        let inactiveSince = deadline - Channel.defaultInactiveAutoEndAfter
        return Session(
            id: sessionID(i), conversationId: conversationID(i), channelId: channel.id, status: .inactive,
            repId: repID(i), createdAt: inactiveSince - Milliseconds(600_000), updatedAt: inactiveSince,
            autoEndDeadline: deadline, heldCapacity: 0, version: 3)
    }

    func inactiveEvent(_ s: Session) -> Event {
        Event(sessionId: s.id, time: s.updatedAt, actor: .rep(s.repId ?? "sweep-rep-000"),
              from: .active, to: .inactive, repId: s.repId, reason: .markedInactive)
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

// MARK: Stores

/// What the benchmark needs from a store: a bulk load, the store the server would use, and
/// read-only probes on a connection of its own.
protocol SweepBenchStore {
    var name: String { get }
    /// How `load` writes (for the output line).
    var loadMethod: String { get }
    /// Loads the population (setup: not measured).
    func load(_ population: Population, batch: Int, progress: (Int) -> Void) throws
    /// Opens the store as the daemon would, for the measured part.
    func openForSweep() throws -> any SessionStore
    /// Whether any session still has an auto-end deadline <= `cutoff`.
    func anyDue(at cutoff: Timestamp) throws -> Bool
    /// Final counts for the checks.
    func verify(_ population: Population) throws -> Verification
    /// Deletes what the benchmark created.
    func remove() throws
}

struct Verification {
    var ended = 0
    var autoEnded = 0
    var autoEndedEvents = 0
    var futureStillInactive = 0
    var inactive = 0
}

/// SQLite: a fresh database file in a temporary directory.
final class SQLiteSweepBenchStore: SweepBenchStore {
    let name = "sqlite"
    let loadMethod = "repository"
    let directory: String
    let path: String
    let durability: SQLiteStore.Options.Durability
    private var probe: SQLiteConnection?

    init(directory: String, durability: SQLiteStore.Options.Durability) throws {
        self.directory = directory
        self.path = (directory as NSString).appendingPathComponent("sessions.sqlite")
        self.durability = durability
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: path) {
            throw StoreSetupError("\(path) already exists: the benchmark wants a fresh store")
        }
    }

    func load(_ population: Population, batch: Int, progress: (Int) -> Void) throws {
        var options = SQLiteStore.Options()
        options.durability = .none      // a setup: nothing to make durable until it is done
        options.readerCount = 1
        let store = try SQLiteStore(path: path, options: options)
        try loadChannelAndReps(population, into: store)
        try loadSessionsThroughRepository(population, into: store, batch: batch, progress: progress)
        try store.checkpoint()
        // `store` closes here; the measured part opens the file again with the daemon's settings.
    }

    func openForSweep() throws -> any SessionStore {
        var options = SQLiteStore.Options()
        options.durability = durability
        return try SQLiteStore(path: path, options: options)
    }

    private func connection() throws -> SQLiteConnection {
        if let probe { return probe }
        var configuration = SQLiteConnection.Configuration()
        configuration.mode = .readOnly
        let c = try SQLiteConnection(path: path, configuration: configuration)
        probe = c
        return c
    }

    func anyDue(at cutoff: Timestamp) throws -> Bool {
        try connection().queryOne(
            "SELECT 1 FROM sessions WHERE auto_end_deadline <= ? LIMIT 1", [cutoff.millisecondsSinceEpoch]) { _ in true } ?? false
    }

    func verify(_ population: Population) throws -> Verification {
        let c = try connection()
        func count(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Int {
            try c.queryOne(sql, arguments) { try $0.int(0) } ?? 0
        }
        var v = Verification()
        v.ended = try count("SELECT count(*) FROM sessions WHERE status = 'ENDED'")
        v.autoEnded = try count("SELECT count(*) FROM sessions WHERE status = 'ENDED' AND end_reason = 'AUTO_ENDED'")
        v.autoEndedEvents = try count("SELECT count(*) FROM events WHERE reason = 'AUTO_ENDED'")
        v.inactive = try count("SELECT count(*) FROM sessions WHERE status = 'INACTIVE'")
        v.futureStillInactive = try count(
            "SELECT count(*) FROM sessions WHERE status = 'INACTIVE' AND auto_end_deadline > ?",
            [population.cutoff.millisecondsSinceEpoch])
        return v
    }

    func remove() throws {
        probe = nil
        try FileManager.default.removeItem(atPath: directory)
    }
}

/// PostgreSQL: an existing, empty database; the store's migrations create the schema.
final class PostgresSweepBenchStore: SweepBenchStore {
    let name = "postgres"
    let url: String
    let durability: SQLiteStore.Options.Durability
    let loadMode: Options.LoadMode
    var loadMethod: String { loadMode.rawValue }
    private var probe: PostgresConnection?
    private var created = false

    /// The tables the schema creates (children first), dropped by `remove()`.
    static let tables = ["messages", "events", "sessions", "tokens", "reps", "channels", PostgresMigrator.tableName]

    init(url: String, durability: SQLiteStore.Options.Durability, loadMode: Options.LoadMode) throws {
        self.url = url
        self.durability = durability
        self.loadMode = loadMode
        let connection = try PostgresConnection(configuration: .init(url: url))
        let tables = try connection.queryOne(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'") { try $0.int(0) } ?? 0
        guard tables == 0 else {
            throw StoreSetupError(
                "\(PostgresConnection.describe(url)) has \(tables) tables in schema public: the benchmark wants an empty database")
        }
    }

    func load(_ population: Population, batch: Int, progress: (Int) -> Void) throws {
        var options = PostgresStore.Options()
        options.synchronousCommit = false   // a setup: nothing to make durable until it is done
        options.applicationName = "session-sweep-bench-load"
        options.lockTimeout = .seconds(600)
        created = true
        let store = try PostgresStore(url: url, options: options)   // migrates: creates the schema
        try loadChannelAndReps(population, into: store)
        switch loadMode {
        case .repository:
            try loadSessionsThroughRepository(population, into: store, batch: batch, progress: progress)
        case .bulk:
            try bulkLoad(population, batch: batch, progress: progress)
        }
        store.closeIdleConnections()
        // What autovacuum would do after such a load (statistics for the planner, the visibility map),
        // and a checkpoint so that the measured part does not pay for the load's dirty pages.
        let connection = try PostgresConnection(configuration: .init(url: url))
        try connection.execute("VACUUM (ANALYZE) sessions")
        try connection.execute("VACUUM (ANALYZE) events")
        do {
            try connection.execute("CHECKPOINT")
        } catch {
            note("CHECKPOINT after the load failed (not a superuser?): \(error)")
        }
    }

    /// Sessions and their INACTIVE events, `batch` per statement pair and transaction: every column
    /// is one array parameter (`unnest`), so a batch costs two round trips however large it is. The
    /// values are exactly what `insertSession` and `appendEvent` would store for the same rows (the
    /// events' cursors are 1...N in session order, their sequences 1: the database is empty).
    private func bulkLoad(_ population: Population, batch: Int, progress: (Int) -> Void) throws {
        var configuration = PostgresConnection.Configuration(url: url)
        configuration.applicationName = "session-sweep-bench-load"
        configuration.settings = ["synchronous_commit": "off", "client_min_messages": "warning"]
        let connection = try PostgresConnection(configuration: configuration)
        let insertSessions = """
            INSERT INTO sessions (id, conversation_id, channel_id, status, rep_id, created_at, updated_at, queued_at,
                inactivity_deadline, auto_end_deadline, awaiting_customer_since, held_capacity, end_reason, version)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[])
            """
        let insertEvents = """
            INSERT INTO events (cursor, session_id, sequence, "time", actor_kind, actor_id, from_status, to_status, rep_id, reason)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[])
            """
        var next = 0
        while next < population.sessions {
            let end = min(population.sessions, next + batch)
            var sessionColumns = Array(repeating: ArrayLiteral(), count: 14)
            var eventColumns = Array(repeating: ArrayLiteral(), count: 10)
            for i in next..<end {
                let s = population.session(i)
                let e = population.inactiveEvent(s)
                let sessionValues: [String?] = [
                    s.id, s.conversationId, s.channelId, s.status.rawValue, s.repId,
                    String(s.createdAt.millisecondsSinceEpoch), String(s.updatedAt.millisecondsSinceEpoch),
                    s.queuedAt.map { String($0.millisecondsSinceEpoch) },
                    s.inactivityDeadline.map { String($0.millisecondsSinceEpoch) },
                    s.autoEndDeadline.map { String($0.millisecondsSinceEpoch) },
                    s.awaitingCustomerSince.map { String($0.millisecondsSinceEpoch) },
                    String(s.heldCapacity), s.endReason?.rawValue, String(s.version),
                ]
                for (c, v) in sessionValues.enumerated() { sessionColumns[c].append(v) }
                let eventValues: [String?] = [
                    String(i + 1), e.sessionId, "1", String(e.time.millisecondsSinceEpoch), e.actor.kind.rawValue,
                    e.actor.id, e.from?.rawValue, e.to.rawValue, e.repId, e.reason.rawValue,
                ]
                for (c, v) in eventValues.enumerated() { eventColumns[c].append(v) }
            }
            try connection.transaction {
                let sessions = try connection.run(insertSessions, sessionColumns.map { $0.finished() })
                let events = try connection.run(insertEvents, eventColumns.map { $0.finished() })
                guard sessions == end - next, events == end - next else {
                    throw StoreSetupError("bulk load: inserted \(sessions) sessions and \(events) events, expected \(end - next)")
                }
            }
            next = end
            progress(next)
        }
    }

    func openForSweep() throws -> any SessionStore {
        var options = PostgresStore.Options()
        options.synchronousCommit = durability == .full
        return try PostgresStore(url: url, options: options)
    }

    private func connection() throws -> PostgresConnection {
        if let probe { return probe }
        var configuration = PostgresConnection.Configuration(url: url)
        configuration.applicationName = "session-sweep-bench-probe"
        let c = try PostgresConnection(configuration: configuration)
        probe = c
        return c
    }

    func anyDue(at cutoff: Timestamp) throws -> Bool {
        try connection().queryOne(
            "SELECT 1 FROM sessions WHERE auto_end_deadline <= $1::bigint LIMIT 1", [cutoff]) { _ in true } ?? false
    }

    func verify(_ population: Population) throws -> Verification {
        let c = try connection()
        func count(_ sql: String, _ arguments: [any PostgresBindable] = []) throws -> Int {
            try c.queryOne(sql, arguments) { try $0.int(0) } ?? 0
        }
        var v = Verification()
        v.ended = try count("SELECT count(*) FROM sessions WHERE status = 'ENDED'")
        v.autoEnded = try count("SELECT count(*) FROM sessions WHERE status = 'ENDED' AND end_reason = 'AUTO_ENDED'")
        v.autoEndedEvents = try count("SELECT count(*) FROM events WHERE reason = 'AUTO_ENDED'")
        v.inactive = try count("SELECT count(*) FROM sessions WHERE status = 'INACTIVE'")
        v.futureStillInactive = try count(
            "SELECT count(*) FROM sessions WHERE status = 'INACTIVE' AND auto_end_deadline > $1::bigint",
            [population.cutoff])
        return v
    }

    /// Drops the tables the benchmark created (the database itself stays: it was given).
    func remove() throws {
        probe = nil
        guard created else { return }
        let c = try PostgresConnection(configuration: .init(url: url))
        try c.execute("DROP TABLE IF EXISTS " + Self.tables.joined(separator: ", "))
    }
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) built one element at a time.
struct ArrayLiteral {
    private var text = "{"
    private var empty = true

    mutating func append(_ value: String?) {
        if !empty { text += "," }
        empty = false
        guard let value else {
            text += "NULL"
            return
        }
        text += "\""
        if value.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            for ch in value.unicodeScalars {
                if ch == "\"" || ch == "\\" { text += "\\" }
                text.unicodeScalars.append(ch)
            }
        } else {
            text += value
        }
        text += "\""
    }

    func finished() -> String { text + "}" }
}

struct StoreSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Memory

/// VmRSS and VmHWM of this process, in KiB.
func memory() -> (rss: Int, hwm: Int) {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    var rss = 0, hwm = 0
    for line in text.split(separator: "\n") {
        if line.hasPrefix("VmRSS:") { rss = Int(line.split(separator: " ")[1]) ?? 0 }
        if line.hasPrefix("VmHWM:") { hwm = Int(line.split(separator: " ")[1]) ?? 0 }
    }
    return (rss, hwm)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0), so that it measures the sweep alone.
func resetHighWaterMark() -> Bool {
    guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
    defer { fclose(f) }
    return fputs("5", f) >= 0
}

func mb(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: Main

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .notice
    return handler
}
let logger = Logger(label: "session-sweep-bench")

let benchStore: any SweepBenchStore
switch options.store {
case .sqlite:
    let directory = options.directory
        ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("session-sweep-bench-\(getpid())")
    do {
        benchStore = try SQLiteSweepBenchStore(directory: directory, durability: options.durability)
    } catch {
        fail("cannot create the store: \(error)")
    }
case .postgres(let url):
    do {
        benchStore = try PostgresSweepBenchStore(url: url, durability: options.durability, loadMode: options.loadMode)
    } catch {
        fail("cannot use \(url): \(error)")
    }
}

let population = Population(
    sessions: options.sessions, due: options.due, layout: options.layout,
    cutoff: ServerClock(testClock: false).now())

do {
    // ---- setup
    note("loading \(options.sessions) INACTIVE sessions (\(options.due) due) into \(benchStore.name)…")
    let loadStart = monotonicSeconds()
    var lastReport = loadStart
    try benchStore.load(population, batch: options.loadBatch) { done in
        let now = monotonicSeconds()
        if now - lastReport > 10 || done == options.sessions {
            note("  \(done) loaded (\(String(format: "%.0f", Double(done) / (now - loadStart))) sessions/s)")
            lastReport = now
        }
    }
    let loadSeconds = monotonicSeconds() - loadStart
    if options.loadOnly {
        note("loaded in \(String(format: "%.1f", loadSeconds)) s; --load-only: not sweeping (cutoff \(population.cutoff.millisecondsSinceEpoch))")
        exit(0)
    }

    // ---- measured: as sessiond runs it. SQLite: the partition loaded into a state owner, which
    // fires due timers from its heap at once (the load is timed apart: it is the restart's cost);
    // PostgreSQL (or --engine sweeper): a real TimerSweeper over a SessionBackend.
    let useOwner = (options.engine ?? "owner") == "owner"
    guard try benchStore.anyDue(at: population.cutoff) || options.due == 0 else {
        fail("no session is due after the load")
    }
    let hwmReset = resetHighWaterMark()
    let before = memory()
    var peakRSS = before.rss
    var partitionLoadSeconds = 0.0
    var rssLoaded = before.rss
    let stopTimers: () -> Void
    let start: Double
    /// With an owner: whether a session due at the cutoff is left unfired or not yet durable.
    var ownerHasDue: (() throws -> Bool)?
    if useOwner {
        note("loading the partition into a state owner (durability \(options.durability)); it fires what is due at once…")
        let store = try benchStore.openForSweep()
        let journal: any PartitionJournal
        if let sqlite = store as? SQLiteStore, let files = benchStore as? SQLiteSweepBenchStore {
            // As sessiond runs it: the journal file in the data directory, the tables behind it.
            journal = JournaledSQLiteStore(store: sqlite, directory: files.directory, syncs: options.durability == .full)
        } else if let postgres = store as? PostgresStore, case .postgres(let url) = options.store {
            // As sessiond runs it: the partition's lock taken, each batch one statement on its connection.
            let pg = try PostgresPartitionJournal(store: postgres, url: url, lease: .seconds(10))
            guard try pg.tryAcquire() else { fail("another process holds the partition's lock on \(url)") }
            // A new fencing epoch: the owner's batches commit only under it.
            try pg.advertise(address: "session-sweep-bench", now: Int64(Date().timeIntervalSince1970 * 1000))
            journal = pg
        } else {
            fail("the owner needs the SQLite or the PostgreSQL store")
        }
        let clock = ServerClock(testClock: false)
        let loadStart = monotonicSeconds()
        let owner = try PartitionOwner(journal: journal, now: { clock.now() })
        start = monotonicSeconds()
        partitionLoadSeconds = start - loadStart
        rssLoaded = memory().rss
        stopTimers = { owner.stop() }
        // Fired = the transition is durable (answered from the journal); the tables follow.
        ownerHasDue = { try owner.performAndWait(readOnly: true) { $0.hasDue(at: population.cutoff) } }
    } else {
        let store = try benchStore.openForSweep()
        let backend = SessionBackend(store: store, clock: ServerClock(testClock: false), logger: logger, servesFromStore: true)
        let sweeper = TimerSweeper(backend: backend, intervalMillis: options.intervalMillis, batchSize: options.sweepBatch)
        note("sweeping (batch \(options.sweepBatch), interval \(options.intervalMillis) ms, durability \(options.durability))…")
        start = monotonicSeconds()
        sweeper.start()
        stopTimers = { sweeper.stop() }
    }
    var finished = false
    var polls = 0
    var firedAt: Double?
    while monotonicSeconds() - start < options.timeoutSeconds {
        if polls % 5 == 0 { peakRSS = max(peakRSS, memory().rss) }   // every ~10 ms
        polls += 1
        if firedAt == nil, let ownerHasDue, try !ownerHasDue() { firedAt = monotonicSeconds() }
        if try !benchStore.anyDue(at: population.cutoff) {
            finished = true
            break
        }
        usleep(2_000)
    }
    // Owner: seconds until every due timer fired durably; tables_s: until the tables held them too.
    let tablesSeconds = monotonicSeconds() - start
    let seconds = (firedAt ?? monotonicSeconds()) - start
    let during = memory()
    stopTimers()
    peakRSS = max(peakRSS, during.rss)
    usleep(100_000)   // let a sweep in progress see that nothing is due
    let after = memory()

    // ---- checks
    let v = try benchStore.verify(population)
    var problems: [String] = []
    if !finished { problems.append("timeout after \(Int(options.timeoutSeconds)) s") }
    if v.ended != options.due { problems.append("ended=\(v.ended) expected \(options.due)") }
    if v.autoEnded != options.due { problems.append("auto_ended=\(v.autoEnded) expected \(options.due)") }
    if v.autoEndedEvents != options.due { problems.append("auto_ended_events=\(v.autoEndedEvents) expected \(options.due)") }
    let future = options.sessions - options.due
    if v.futureStillInactive != future || v.inactive != future {
        problems.append("future_inactive=\(v.futureStillInactive) inactive=\(v.inactive) expected \(future)")
    }
    let rate = seconds > 0 ? Double(v.autoEndedEvents) / seconds : 0
    print(
        "sweep store=\(benchStore.name) sessions=\(options.sessions) due=\(options.due) fired=\(v.autoEndedEvents)"
            + " seconds=\(String(format: "%.3f", seconds)) transitions_per_s=\(String(format: "%.0f", rate))"
            + " rss_before_mb=\(mb(before.rss)) rss_peak_during_mb=\(mb(peakRSS)) rss_after_mb=\(mb(after.rss))"
            + " hwm_during_mb=\(hwmReset ? mb(during.hwm) : "n/a") future_untouched=\(v.futureStillInactive)"
            + " load_s=\(String(format: "%.1f", loadSeconds)) load=\(benchStore.loadMethod) sweep_batch=\(options.sweepBatch) layout=\(options.layout.rawValue)"
            + " engine=\(useOwner ? "owner" : "sweeper") partition_load_s=\(String(format: "%.2f", partitionLoadSeconds)) rss_loaded_mb=\(mb(rssLoaded))"
            + " tables_s=\(String(format: "%.3f", tablesSeconds))"
            + " check=\(problems.isEmpty ? "ok" : "FAILED(" + problems.joined(separator: "; ") + ")")")
    if !options.keep { try? benchStore.remove() } else { note("kept the store (--keep)") }
    exit(problems.isEmpty ? 0 : 1)
} catch {
    note("failed: \(error)")
    if !options.keep { try? benchStore.remove() }
    exit(1)
}

// MARK: - Loading through the repository (either store)

/// The channel and the reps every population needs.
func loadChannelAndReps(_ population: Population, into store: any SessionStore) throws {
    try store.write { repo in
        try repo.insertChannel(population.channel)
        for r in 0..<population.repCount {
            let id = population.repID(r)
            try repo.upsertRep(Rep(
                id: id, displayName: id, capacity: 100, presence: .offline,
                permissions: [.enhancedChatUser, .enhancedChatRep], idleSince: population.cutoff))
        }
    }
}

/// The sessions and their creation events, `batch` per transaction.
func loadSessionsThroughRepository(
    _ population: Population, into store: any SessionStore, batch: Int, progress: (Int) -> Void
) throws {
    var next = 0
    while next < population.sessions {
        let end = min(population.sessions, next + batch)
        try store.write { repo in
            for i in next..<end {
                let s = population.session(i)
                try repo.insertSession(s)
                _ = try repo.appendEvent(population.inactiveEvent(s))
            }
        }
        next = end
        progress(next)
    }
}
