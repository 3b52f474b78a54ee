extension PostgresStore {
    /// How the store connects and behaves.
    public struct Options: Sendable, Hashable {
        /// Connections for `write` (each holds the write lock only while its
        /// transaction runs, so 2 are enough to keep the lock busy).
        public var writerConnections = 2
        /// Connections for `read`, used concurrently.
        public var readerConnections = 4
        /// How long opening a connection may take (libpq's `connect_timeout`,
        /// whole seconds, at least 2) before the call fails as unavailable.
        public var connectTimeout: Duration = .seconds(5)
        /// How long a statement waits for a lock, the write lock included
        /// (`lock_timeout`); then the call fails with SQLSTATE 55P03.
        public var lockTimeout: Duration = .seconds(30)
        /// How often `write` re-runs its closure after a serialization failure
        /// (40001) or a deadlock (40P01).
        public var conflictRetries = 3
        /// `synchronous_commit`: when `true` (the default) a write returns
        /// only once its commit is flushed to the server's disk.
        public var synchronousCommit = true
        /// Shown in `pg_stat_activity`.
        public var applicationName = "sessiond"
        /// The schema that holds the tables (a tenant's own), created if missing; nil: the
        /// database's default (`public`).
        public var schema: String?

        /// The schema of a tenant's tables: the default tenant's are the main schema's.
        public static func schema(forTenant id: String) -> String? {
            id == "default" ? nil : "tenant_" + String(id.map { $0 == "-" ? "_" : $0 })
        }

        /// The defaults: 2 writers, 4 readers, 5 s connect timeout, 30 s lock timeout.
        public init() {}

        func connectionConfiguration(url: String) -> PostgresConnection.Configuration {
            var configuration = PostgresConnection.Configuration(url: url)
            configuration.connectTimeoutSeconds = Int(clamping: connectTimeout.components.seconds)
            configuration.applicationName = applicationName.isEmpty ? "sessiond" : applicationName
            configuration.settings = [
                "lock_timeout": "\(Self.milliseconds(lockTimeout))ms",
                "synchronous_commit": synchronousCommit ? "on" : "off",
                // The decoders read bytea in hex and expect no notices on stderr.
                "bytea_output": "hex",
                "client_min_messages": "warning",
            ]
            if let schema { configuration.settings["search_path"] = schema }
            return configuration
        }

        static func milliseconds(_ duration: Duration) -> Int64 {
            let (seconds, attoseconds) = duration.components
            let milliseconds = seconds.multipliedReportingOverflow(by: 1_000)
            guard !milliseconds.overflow else { return seconds < 0 ? 0 : .max }
            return max(0, milliseconds.partialValue + attoseconds / 1_000_000_000_000_000)
        }
    }
}
