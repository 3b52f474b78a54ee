extension SQLiteStore {
    /// How the store opens its database.
    public struct Options: Sendable, Hashable {
        /// What a commit that returned survives.
        public enum Durability: Sendable, Hashable {
            /// `PRAGMA synchronous = FULL`: every commit is fsynced before `write`
            /// returns, so it survives `kill -9` and power loss. The default.
            case full
            /// `PRAGMA synchronous = NORMAL` (WAL): a commit survives `kill -9` of
            /// the process but the last commits may be lost on power loss.
            case processCrash
            /// `PRAGMA synchronous = OFF`: for throwaway databases (tests, benchmarks) only.
            case none
        }

        /// What a commit that returned survives; `.full` by default.
        public var durability: Durability = .full
        /// How many read connections serve `read` closures concurrently (at least 1).
        public var readerCount = 4
        /// How long a connection waits for a lock held by another process before
        /// failing with `SQLITE_BUSY` (5 seconds).
        public var busyTimeout: Duration = .seconds(5)
        /// Create the database file's directory if it does not exist.
        public var createsDirectory = true

        /// The defaults: full durability, 4 readers, 5 s busy timeout.
        public init() {}

        var synchronous: SQLiteConnection.SynchronousMode {
            switch durability {
            case .full: .full
            case .processCrash: .normal
            case .none: .off
            }
        }

        var busyTimeoutMilliseconds: Int32 {
            let (seconds, attoseconds) = busyTimeout.components
            let milliseconds = seconds.multipliedReportingOverflow(by: 1_000)
            guard !milliseconds.overflow else { return seconds < 0 ? 0 : .max }
            return Int32(clamping: max(0, milliseconds.partialValue + attoseconds / 1_000_000_000_000_000))
        }

        func connectionConfiguration(mode: SQLiteConnection.Mode) -> SQLiteConnection.Configuration {
            var configuration = SQLiteConnection.Configuration()
            configuration.mode = mode
            configuration.synchronous = synchronous
            configuration.busyTimeoutMilliseconds = busyTimeoutMilliseconds
            configuration.foreignKeys = true
            configuration.journalModeWAL = true
            return configuration
        }
    }
}
