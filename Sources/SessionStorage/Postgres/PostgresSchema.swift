/// The versioned schema of the session store in PostgreSQL: the same tables,
/// columns, constraints and indexes as ``SessionSchema`` (SQLite), in
/// PostgreSQL's dialect, with the same version numbers.
///
/// Conventions: times are `BIGINT` milliseconds since the Unix epoch and
/// durations `BIGINT` milliseconds; every integer is `BIGINT` (Swift's `Int`);
/// enums are `TEXT` holding their proto-style raw values; booleans are
/// `BOOLEAN`; token hashes are `BYTEA`. Every text column uses the `"C"`
/// collation, so that `ORDER BY id` and `id > $1` compare bytes (code points)
/// exactly like SQLite and the reference repository, whatever locale the
/// database was created with.
///
/// The foreign keys and unique indexes are the backstop; the repository's
/// statements check them up front (`WHERE EXISTS`, `ON CONFLICT DO NOTHING`),
/// because in PostgreSQL a failed statement aborts the whole transaction,
/// while an anticipated refusal (a `DomainError`) must leave it usable.
///
/// Never edit a migration that has shipped: append a new one.
package enum PostgresSchema {
    /// Every migration, in order. The last version is the schema this build writes.
    package static let migrations: [PostgresMigration] = [
        PostgresMigration(version: 1, name: "sessions, reps, channels, events, messages, tokens", sql: version1),
        PostgresMigration(version: 2, name: "message ids scoped per channel; settings", sql: version2),
        PostgresMigration(version: 3, name: "partition owners", sql: version3),
        PostgresMigration(version: 4, name: "tenants; tokens scoped to a tenant, operator tokens", sql: version4),
        PostgresMigration(version: 5, name: "live instances; owner epochs", sql: version5),
        PostgresMigration(version: 6, name: "a function that writes a journal batch", sql: version6),
    ]

    /// The schema version this build expects.
    package static var latestVersion: Int { migrations.last?.version ?? 0 }

    static let version1 = """
        CREATE TABLE channels (
            id                             TEXT COLLATE "C" PRIMARY KEY,
            type                           TEXT COLLATE "C" NOT NULL,
            capacity_model                 TEXT COLLATE "C" NOT NULL CHECK (capacity_model IN ('TAB_BASED', 'STATUS_BASED')),
            capacity_weight                BIGINT  NOT NULL CHECK (capacity_weight >= 1),
            customer_inactivity_timeout_ms BIGINT  CHECK (customer_inactivity_timeout_ms > 0),
            inactive_auto_end_after_ms     BIGINT  NOT NULL CHECK (inactive_auto_end_after_ms > 0),
            inactivate_action_visible      BOOLEAN NOT NULL
        );

        -- permissions: the rep's permissions, sorted and comma-separated
        -- (ENHANCED_CHAT_REP,MESSAGING_AGENT); a rep is always read whole.
        CREATE TABLE reps (
            id            TEXT COLLATE "C" PRIMARY KEY,
            display_name  TEXT COLLATE "C" NOT NULL,
            capacity      BIGINT NOT NULL CHECK (capacity >= 1),
            presence      TEXT COLLATE "C" NOT NULL CHECK (presence IN ('OFFLINE', 'AVAILABLE', 'BUSY')),
            permissions   TEXT COLLATE "C" NOT NULL,
            used_capacity BIGINT NOT NULL CHECK (used_capacity >= 0),
            idle_since    BIGINT NOT NULL
        );
        -- Routing candidates.
        CREATE INDEX reps_available ON reps (id) WHERE presence = 'AVAILABLE';

        CREATE TABLE sessions (
            id                      TEXT COLLATE "C" PRIMARY KEY,
            conversation_id         TEXT COLLATE "C" NOT NULL,
            channel_id              TEXT COLLATE "C" NOT NULL REFERENCES channels (id),
            status                  TEXT COLLATE "C" NOT NULL
                CHECK (status IN ('NEW', 'WAITING', 'ACTIVE', 'INACTIVE', 'ENDED')),
            rep_id                  TEXT COLLATE "C" REFERENCES reps (id),
            created_at              BIGINT NOT NULL,
            updated_at              BIGINT NOT NULL,
            queued_at               BIGINT,
            inactivity_deadline     BIGINT,
            auto_end_deadline       BIGINT,
            awaiting_customer_since BIGINT,
            held_capacity           BIGINT NOT NULL CHECK (held_capacity >= 0),
            end_reason              TEXT COLLATE "C",
            version                 BIGINT NOT NULL CHECK (version >= 1)
        );
        -- At most one open session per conversation.
        CREATE UNIQUE INDEX sessions_open_conversation ON sessions (conversation_id) WHERE status <> 'ENDED';
        -- Every session of a conversation (listing with a conversation filter).
        CREATE INDEX sessions_conversation ON sessions (conversation_id, id);
        -- The FIFO routing queue. The key falls back on updated_at like the reference repository does.
        CREATE INDEX sessions_waiting_queue ON sessions ((coalesce(queued_at, updated_at)), id) WHERE status = 'WAITING';
        CREATE INDEX sessions_status ON sessions (status, id);
        CREATE INDEX sessions_rep_status ON sessions (rep_id, status, id);
        CREATE INDEX sessions_channel_status ON sessions (channel_id, status, id);
        -- Durable timers, each read in (deadline, id) order by the sweeper.
        CREATE INDEX sessions_inactivity_deadline ON sessions (inactivity_deadline, id) WHERE inactivity_deadline IS NOT NULL;
        CREATE INDEX sessions_auto_end_deadline ON sessions (auto_end_deadline, id) WHERE auto_end_deadline IS NOT NULL;

        -- cursor: the global position watchers resume from, assigned as
        -- max + 1 under the store's write lock (so in commit order, without
        -- gaps, and never reused: events are never deleted).
        CREATE TABLE events (
            cursor      BIGINT PRIMARY KEY CHECK (cursor >= 1),
            session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
            sequence    BIGINT NOT NULL CHECK (sequence >= 1),
            "time"      BIGINT NOT NULL,
            actor_kind  TEXT COLLATE "C" NOT NULL,
            actor_id    TEXT COLLATE "C" NOT NULL,
            from_status TEXT COLLATE "C",
            to_status   TEXT COLLATE "C" NOT NULL,
            rep_id      TEXT COLLATE "C",
            reason      TEXT COLLATE "C" NOT NULL,
            UNIQUE (session_id, sequence)
        );

        CREATE TABLE messages (
            message_id TEXT COLLATE "C" PRIMARY KEY,
            session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
            sender     TEXT COLLATE "C" NOT NULL CHECK (sender IN ('CUSTOMER', 'REP')),
            text       TEXT COLLATE "C" NOT NULL,
            "time"     BIGINT NOT NULL
        );
        CREATE INDEX messages_session ON messages (session_id);

        -- API bearer tokens, by the hash of the secret (the secret itself is never stored).
        CREATE TABLE tokens (
            token_hash BYTEA  PRIMARY KEY CHECK (length(token_hash) > 0),
            role       TEXT COLLATE "C" NOT NULL CHECK (role IN ('SERVICE', 'REP', 'ADMIN')),
            rep_id     TEXT COLLATE "C" CHECK ((role = 'REP') = (rep_id IS NOT NULL)),
            name       TEXT COLLATE "C" NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        );
        """

    /// Message ids become idempotency keys per channel (see the SQLite schema's version 2).
    static let version2 = """
        ALTER TABLE messages ADD COLUMN channel_id TEXT COLLATE "C";
        UPDATE messages m SET channel_id = s.channel_id FROM sessions s WHERE s.id = m.session_id;
        ALTER TABLE messages ALTER COLUMN channel_id SET NOT NULL;
        ALTER TABLE messages DROP CONSTRAINT messages_pkey;
        ALTER TABLE messages ADD PRIMARY KEY (channel_id, message_id);

        CREATE TABLE settings (
            key   TEXT COLLATE "C" PRIMARY KEY,
            value BIGINT NOT NULL
        );
        """

    /// Who owns each partition (the holder of its advisory lock, see `PostgresPartitionJournal`)
    /// and the address where it answers: the other instances forward calls there.
    static let version3 = """
        CREATE TABLE partition_owner (
            partition TEXT COLLATE "C" PRIMARY KEY,
            address   TEXT COLLATE "C" NOT NULL,
            since     BIGINT NOT NULL
        );
        """

    /// Tenants (see the SQLite schema's version 4): the registry and every token in the main
    /// schema; each tenant's data in a schema of its own (the default tenant's in the main one).
    static let version4 = """
        CREATE TABLE tenants (
            id           TEXT COLLATE "C" PRIMARY KEY,
            display_name TEXT COLLATE "C" NOT NULL,
            created_at   BIGINT NOT NULL,
            disabled_at  BIGINT
        );

        ALTER TABLE tokens ADD COLUMN tenant_id TEXT COLLATE "C";
        UPDATE tokens SET tenant_id = 'default';
        ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
        ALTER TABLE tokens ADD CONSTRAINT tokens_role_check CHECK (role IN ('SERVICE', 'REP', 'ADMIN', 'OPERATOR'));
        ALTER TABLE tokens ADD CONSTRAINT tokens_tenant_check CHECK ((role = 'OPERATOR') = (tenant_id IS NULL));
        CREATE INDEX tokens_tenant ON tokens (tenant_id, created_at);
        """

    /// The instances sharing the database, each with the database's time of its last heartbeat:
    /// tenants are spread evenly over the live ones.
    static let version5 = """
        CREATE TABLE instances (
            address      TEXT COLLATE "C" PRIMARY KEY,
            heartbeat_at BIGINT NOT NULL,
            owned        BIGINT NOT NULL DEFAULT 0
        );
        -- Bumped by each new owner of the partition; every batch commits only while it is the owner's.
        ALTER TABLE partition_owner ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
        """

    /// Writes one journal batch of the partition whose tables are in this schema (`SET search_path
    /// FROM CURRENT`: the schema the migration ran in), if `p_epoch` is still its owner's: the rows
    /// of each table as one array per column, inserted from `unnest`, in the batch's order (channels
    /// and reps before the sessions that reference them, sessions before their events and
    /// messages). False, with nothing written, when the epoch had moved on. The fence row is read
    /// `FOR SHARE`, so a takeover's update of it waits for this commit, and a batch that waited
    /// for a takeover finds the new epoch.
    ///
    /// A function, not the statement of data-modifying CTEs it replaces: PL/pgSQL keeps each of its
    /// statements' plans per connection, while the CTE statement (its text different for every set
    /// of tenants in a group commit) was parsed, analysed and planned for every commit: ~39% of the
    /// commit backend's samples with 12 light tenants on one instance.
    static let version6 = """
        CREATE FUNCTION apply_batch(
            p_partition TEXT, p_epoch BIGINT,
            c_id TEXT[], c_type TEXT[], c_capacity_model TEXT[], c_capacity_weight BIGINT[],
            c_inactivity_timeout BIGINT[], c_auto_end_after BIGINT[], c_action_visible BOOLEAN[],
            r_id TEXT[], r_display_name TEXT[], r_capacity BIGINT[], r_presence TEXT[], r_permissions TEXT[],
            r_used_capacity BIGINT[], r_idle_since BIGINT[],
            s_id TEXT[], s_conversation_id TEXT[], s_channel_id TEXT[], s_status TEXT[], s_rep_id TEXT[],
            s_created_at BIGINT[], s_updated_at BIGINT[], s_queued_at BIGINT[], s_inactivity_deadline BIGINT[],
            s_auto_end_deadline BIGINT[], s_awaiting_since BIGINT[], s_held_capacity BIGINT[], s_end_reason TEXT[],
            s_version BIGINT[],
            e_cursor BIGINT[], e_session_id TEXT[], e_sequence BIGINT[], e_time BIGINT[], e_actor_kind TEXT[],
            e_actor_id TEXT[], e_from_status TEXT[], e_to_status TEXT[], e_rep_id TEXT[], e_reason TEXT[],
            m_message_id TEXT[], m_channel_id TEXT[], m_session_id TEXT[], m_sender TEXT[], m_text TEXT[], m_time BIGINT[],
            st_key TEXT[], st_value BIGINT[]
        ) RETURNS BOOLEAN LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
        BEGIN
            PERFORM 1 FROM partition_owner WHERE partition = p_partition AND epoch = p_epoch FOR SHARE;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            IF cardinality(c_id) > 0 THEN
                INSERT INTO channels (id, type, capacity_model, capacity_weight, customer_inactivity_timeout_ms,
                                      inactive_auto_end_after_ms, inactivate_action_visible)
                SELECT * FROM unnest(c_id, c_type, c_capacity_model, c_capacity_weight, c_inactivity_timeout,
                                     c_auto_end_after, c_action_visible)
                ON CONFLICT (id) DO UPDATE SET type = excluded.type, capacity_model = excluded.capacity_model,
                    capacity_weight = excluded.capacity_weight,
                    customer_inactivity_timeout_ms = excluded.customer_inactivity_timeout_ms,
                    inactive_auto_end_after_ms = excluded.inactive_auto_end_after_ms,
                    inactivate_action_visible = excluded.inactivate_action_visible;
            END IF;
            IF cardinality(r_id) > 0 THEN
                INSERT INTO reps (id, display_name, capacity, presence, permissions, used_capacity, idle_since)
                SELECT * FROM unnest(r_id, r_display_name, r_capacity, r_presence, r_permissions, r_used_capacity,
                                     r_idle_since)
                ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, capacity = excluded.capacity,
                    presence = excluded.presence, permissions = excluded.permissions,
                    used_capacity = excluded.used_capacity, idle_since = excluded.idle_since;
            END IF;
            IF cardinality(s_id) > 0 THEN
                INSERT INTO sessions (id, conversation_id, channel_id, status, rep_id, created_at, updated_at, queued_at,
                                      inactivity_deadline, auto_end_deadline, awaiting_customer_since, held_capacity,
                                      end_reason, version)
                SELECT * FROM unnest(s_id, s_conversation_id, s_channel_id, s_status, s_rep_id, s_created_at,
                                     s_updated_at, s_queued_at, s_inactivity_deadline, s_auto_end_deadline,
                                     s_awaiting_since, s_held_capacity, s_end_reason, s_version)
                ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id, status = excluded.status,
                    rep_id = excluded.rep_id, created_at = excluded.created_at, updated_at = excluded.updated_at,
                    queued_at = excluded.queued_at, inactivity_deadline = excluded.inactivity_deadline,
                    auto_end_deadline = excluded.auto_end_deadline,
                    awaiting_customer_since = excluded.awaiting_customer_since,
                    held_capacity = excluded.held_capacity, end_reason = excluded.end_reason, version = excluded.version;
            END IF;
            IF cardinality(e_cursor) > 0 THEN
                INSERT INTO events (cursor, session_id, sequence, "time", actor_kind, actor_id, from_status, to_status,
                                    rep_id, reason)
                SELECT * FROM unnest(e_cursor, e_session_id, e_sequence, e_time, e_actor_kind, e_actor_id,
                                     e_from_status, e_to_status, e_rep_id, e_reason);
            END IF;
            IF cardinality(m_message_id) > 0 THEN
                INSERT INTO messages (message_id, channel_id, session_id, sender, text, "time")
                SELECT * FROM unnest(m_message_id, m_channel_id, m_session_id, m_sender, m_text, m_time);
            END IF;
            IF cardinality(st_key) > 0 THEN
                INSERT INTO settings (key, value) SELECT * FROM unnest(st_key, st_value)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value;
            END IF;
            RETURN true;
        END
        $fn$;
        """
}
