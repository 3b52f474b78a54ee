/// The versioned schema of the session store.
///
/// Conventions: every table is `STRICT` (SQLite enforces the declared column
/// types); times are `INTEGER` milliseconds since the Unix epoch and durations
/// `INTEGER` milliseconds; enums are `TEXT` holding their proto-style raw
/// values; booleans are `INTEGER` 0/1.
///
/// Never edit a migration that has shipped: append a new one.
package enum SessionSchema {
    /// Every migration, in order. The last version is the schema this build writes.
    package static let migrations: [SQLiteMigration] = [
        SQLiteMigration(version: 1, name: "sessions, reps, channels, events, messages, tokens", sql: version1),
        SQLiteMigration(version: 2, name: "message ids scoped per channel; settings", sql: version2),
        SQLiteMigration(version: 3, name: "partition owners", sql: version3),
        SQLiteMigration(version: 4, name: "tenants; tokens scoped to a tenant, operator tokens", sql: version4),
        SQLiteMigration(version: 5, name: "live instances; owner epochs", sql: version5),
        SQLiteMigration(version: 6, name: "a function that writes a journal batch (PostgreSQL only)", sql: version6),
    ]

    /// The schema version this build expects.
    package static var latestVersion: Int { migrations.last?.version ?? 0 }

    static let version1 = """
        CREATE TABLE channels (
            id                             TEXT    PRIMARY KEY NOT NULL,
            type                           TEXT    NOT NULL,
            capacity_model                 TEXT    NOT NULL CHECK (capacity_model IN ('TAB_BASED', 'STATUS_BASED')),
            capacity_weight                INTEGER NOT NULL CHECK (capacity_weight >= 1),
            customer_inactivity_timeout_ms INTEGER CHECK (customer_inactivity_timeout_ms > 0),
            inactive_auto_end_after_ms     INTEGER NOT NULL CHECK (inactive_auto_end_after_ms > 0),
            inactivate_action_visible      INTEGER NOT NULL CHECK (inactivate_action_visible IN (0, 1))
        ) STRICT;

        -- permissions: the rep's permissions, sorted and comma-separated
        -- (ENHANCED_CHAT_REP,MESSAGING_AGENT); a rep is always read whole.
        CREATE TABLE reps (
            id            TEXT    PRIMARY KEY NOT NULL,
            display_name  TEXT    NOT NULL,
            capacity      INTEGER NOT NULL CHECK (capacity >= 1),
            presence      TEXT    NOT NULL CHECK (presence IN ('OFFLINE', 'AVAILABLE', 'BUSY')),
            permissions   TEXT    NOT NULL,
            used_capacity INTEGER NOT NULL CHECK (used_capacity >= 0),
            idle_since    INTEGER NOT NULL
        ) STRICT;
        -- Routing candidates.
        CREATE INDEX reps_available ON reps (id) WHERE presence = 'AVAILABLE';

        CREATE TABLE sessions (
            id                      TEXT    PRIMARY KEY NOT NULL,
            conversation_id         TEXT    NOT NULL,
            channel_id              TEXT    NOT NULL REFERENCES channels (id),
            status                  TEXT    NOT NULL
                CHECK (status IN ('NEW', 'WAITING', 'ACTIVE', 'INACTIVE', 'ENDED')),
            rep_id                  TEXT    REFERENCES reps (id),
            created_at              INTEGER NOT NULL,
            updated_at              INTEGER NOT NULL,
            queued_at               INTEGER,
            inactivity_deadline     INTEGER,
            auto_end_deadline       INTEGER,
            awaiting_customer_since INTEGER,
            held_capacity           INTEGER NOT NULL CHECK (held_capacity >= 0),
            end_reason              TEXT,
            version                 INTEGER NOT NULL CHECK (version >= 1)
        ) STRICT;
        -- At most one open session per conversation.
        CREATE UNIQUE INDEX sessions_open_conversation ON sessions (conversation_id) WHERE status <> 'ENDED';
        -- Every session of a conversation (listing with a conversation filter).
        CREATE INDEX sessions_conversation ON sessions (conversation_id, id);
        -- The FIFO routing queue. The key falls back on updated_at like the reference repository does.
        CREATE INDEX sessions_waiting_queue ON sessions (coalesce(queued_at, updated_at), id) WHERE status = 'WAITING';
        CREATE INDEX sessions_status ON sessions (status, id);
        CREATE INDEX sessions_rep_status ON sessions (rep_id, status, id);
        CREATE INDEX sessions_channel_status ON sessions (channel_id, status, id);
        -- Durable timers.
        CREATE INDEX sessions_inactivity_deadline ON sessions (inactivity_deadline) WHERE inactivity_deadline IS NOT NULL;
        CREATE INDEX sessions_auto_end_deadline ON sessions (auto_end_deadline) WHERE auto_end_deadline IS NOT NULL;

        -- cursor: the global position watchers resume from. AUTOINCREMENT never
        -- reuses a cursor, even after the newest events are deleted.
        CREATE TABLE events (
            cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id  TEXT    NOT NULL REFERENCES sessions (id),
            sequence    INTEGER NOT NULL CHECK (sequence >= 1),
            time        INTEGER NOT NULL,
            actor_kind  TEXT    NOT NULL,
            actor_id    TEXT    NOT NULL,
            from_status TEXT,
            to_status   TEXT    NOT NULL,
            rep_id      TEXT,
            reason      TEXT    NOT NULL,
            UNIQUE (session_id, sequence)
        ) STRICT;

        CREATE TABLE messages (
            message_id TEXT    PRIMARY KEY NOT NULL,
            session_id TEXT    NOT NULL REFERENCES sessions (id),
            sender     TEXT    NOT NULL CHECK (sender IN ('CUSTOMER', 'REP')),
            text       TEXT    NOT NULL,
            time       INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX messages_session ON messages (session_id);

        -- API bearer tokens, by the hash of the secret (the secret itself is never stored).
        CREATE TABLE tokens (
            token_hash BLOB    PRIMARY KEY NOT NULL CHECK (length(token_hash) > 0),
            role       TEXT    NOT NULL CHECK (role IN ('SERVICE', 'REP', 'ADMIN')),
            rep_id     TEXT    CHECK ((role = 'REP') = (rep_id IS NOT NULL)),
            name       TEXT    NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT;
        """

    /// Message ids become idempotency keys per channel: (channel_id, message_id)
    /// is the key, filled from each message's session. A small settings table
    /// holds server state that must survive restarts (the test clock's offset).
    static let version2 = """
        CREATE TABLE messages_v2 (
            message_id TEXT    NOT NULL,
            channel_id TEXT    NOT NULL,
            session_id TEXT    NOT NULL REFERENCES sessions (id),
            sender     TEXT    NOT NULL CHECK (sender IN ('CUSTOMER', 'REP')),
            text       TEXT    NOT NULL,
            time       INTEGER NOT NULL,
            PRIMARY KEY (channel_id, message_id)
        ) STRICT;
        INSERT INTO messages_v2 (message_id, channel_id, session_id, sender, text, time)
            SELECT m.message_id, s.channel_id, m.session_id, m.sender, m.text, m.time
            FROM messages m JOIN sessions s ON s.id = m.session_id;
        DROP TABLE messages;
        ALTER TABLE messages_v2 RENAME TO messages;
        CREATE INDEX messages_session ON messages (session_id);

        CREATE TABLE settings (
            key   TEXT    PRIMARY KEY NOT NULL,
            value INTEGER NOT NULL
        ) STRICT;
        """

    /// Who owns each partition and where it answers (PostgreSQL with several instances: the
    /// others forward calls there). The embedded store has one owner and leaves it empty; the
    /// table exists so both schemas keep the same versions.
    static let version3 = """
        CREATE TABLE partition_owner (
            partition TEXT    PRIMARY KEY NOT NULL,
            address   TEXT    NOT NULL,
            since     INTEGER NOT NULL
        ) STRICT;
        """

    /// Tenants. The registry (`tenants`) and every token live in the main database; each
    /// tenant's channels, reps, sessions, events and messages live in a database of its own
    /// (the default tenant's in the main one), so every table below keeps its keys. Existing
    /// tokens belong to the default tenant; OPERATOR tokens belong to none.
    static let version4 = """
        CREATE TABLE tenants (
            id           TEXT    PRIMARY KEY NOT NULL,
            display_name TEXT    NOT NULL,
            created_at   INTEGER NOT NULL,
            disabled_at  INTEGER
        ) STRICT;

        CREATE TABLE tokens_v4 (
            token_hash BLOB    PRIMARY KEY NOT NULL CHECK (length(token_hash) > 0),
            role       TEXT    NOT NULL CHECK (role IN ('SERVICE', 'REP', 'ADMIN', 'OPERATOR')),
            rep_id     TEXT    CHECK ((role = 'REP') = (rep_id IS NOT NULL)),
            name       TEXT    NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            tenant_id  TEXT    CHECK ((role = 'OPERATOR') = (tenant_id IS NULL))
        ) STRICT;
        INSERT INTO tokens_v4 (token_hash, role, rep_id, name, created_at, revoked_at, tenant_id)
            SELECT token_hash, role, rep_id, name, created_at, revoked_at, 'default' FROM tokens;
        DROP TABLE tokens;
        ALTER TABLE tokens_v4 RENAME TO tokens;
        CREATE INDEX tokens_tenant ON tokens (tenant_id, created_at);
        """

    /// The instances sharing a database and when each last said it is alive (PostgreSQL: tenants
    /// are spread over the live ones). The embedded store has one instance and leaves it empty.
    /// A partition owner's fencing epoch (PostgreSQL: each batch commits only while it holds).
    static let version5 = """
        CREATE TABLE instances (
            address      TEXT    PRIMARY KEY NOT NULL,
            heartbeat_at INTEGER NOT NULL,
            owned        INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        ALTER TABLE partition_owner ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
        """

    /// PostgreSQL's version 6 adds `apply_batch` (see `PostgresSchema.version6`); SQLite's
    /// materializer writes its tables itself. Nothing changes here: the versions stay in step.
    static let version6 = """
        -- Nothing: PostgreSQL only.
        """
}
