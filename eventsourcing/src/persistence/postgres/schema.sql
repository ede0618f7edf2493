-- The PostgreSQL recorder's schema, version 2.
--
-- `{schema}`, `{events}`, `{tracking}`, `{snapshots}`, `{meta}` and the `{..._key}` index
-- names are substituted by the recorder after each has been validated as a plain identifier
-- (`[A-Za-z_][A-Za-z0-9_]{0,62}`); every value is a bind parameter. Creation is idempotent and
-- runs under a transaction-scoped advisory lock, so concurrent openers do not race.

CREATE SCHEMA IF NOT EXISTS "{schema}";

-- One row: the schema version this database was created (or migrated) with.
CREATE TABLE IF NOT EXISTS "{schema}"."{meta}" (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    schema_version INT NOT NULL
);
-- The ordering mode the log's positions were assigned with (`xid` or `table_lock`; NULL in
-- stores created before the column existed, which used `table_lock`). Added without a schema
-- version bump: older builds ignore it.
ALTER TABLE "{schema}"."{meta}" ADD COLUMN IF NOT EXISTS ordering TEXT;
-- Version 2: added to every position of the `xid` ordering. Zero until the store is found,
-- on open, with positions at or above what the cluster's next transaction id would give (a
-- dump restored into another cluster, a promoted logical-replication subscriber); the
-- recorder then raises it, under a lock that waits for running appends, so that every new
-- position is above every stored one. Builds that predate it refuse version 2.
ALTER TABLE "{schema}"."{meta}" ADD COLUMN IF NOT EXISTS position_offset BIGINT NOT NULL DEFAULT 0;

-- The global log. With the `xid` ordering, `position` is `(xid << 20) | ordinal`, set by the
-- insert from `pg_current_xact_id()` (OVERRIDING SYSTEM VALUE) and read only below the
-- cluster's `pg_snapshot_xmin` horizon. With `table_lock`, it is assigned from the identity
-- sequence while the appending transaction holds the table in EXCLUSIVE mode. See the module
-- docs: gap-free order.
CREATE TABLE IF NOT EXISTS "{schema}"."{events}" (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      TEXT   NOT NULL,
    version        BIGINT NOT NULL CHECK (version > 0),
    event_id       UUID   NOT NULL,
    topic          TEXT   NOT NULL,
    schema_version INT    NOT NULL,
    "timestamp"    BIGINT NOT NULL, -- microseconds since the Unix epoch
    payload        BYTEA  NOT NULL,
    metadata       JSONB,           -- causation, correlation and user values; NULL when none
    CONSTRAINT "{event_id_key}" UNIQUE (event_id)
);

-- Optimistic concurrency: one event per stream and version. A racing writer that passed the
-- version check still fails here (SQLSTATE 23505), and the recorder reports a conflict.
CREATE UNIQUE INDEX IF NOT EXISTS "{stream_version_key}"
    ON "{schema}"."{events}" (stream_id, version);

-- Topic-filtered reads of the log.
CREATE INDEX IF NOT EXISTS "{topic_position_key}"
    ON "{schema}"."{events}" (topic, position);

-- Positions of upstream logs already processed, written in the same transaction as the
-- events they caused.
CREATE TABLE IF NOT EXISTS "{schema}"."{tracking}" (
    upstream TEXT   NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (upstream, position)
);

-- Snapshots of entity state, deleted together with their stream.
CREATE TABLE IF NOT EXISTS "{schema}"."{snapshots}" (
    stream_id      TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    topic          TEXT   NOT NULL,
    schema_version INT    NOT NULL,
    state          BYTEA  NOT NULL,
    created_on     BIGINT NOT NULL,
    modified_on    BIGINT NOT NULL,
    PRIMARY KEY (stream_id, version)
);

-- Leases of competing instances of a follower (one per partition of its upstream, and one per
-- live instance). A tracked append that carries a lease is written only while the lease is
-- held at its epoch and unexpired, checked under a share lock on its row that a takeover
-- waits for. Times are the server's clock (`statement_timestamp()`), so instances on machines
-- whose clocks disagree still agree on expiry. Added without a schema version bump: older
-- builds ignore the table.
CREATE TABLE IF NOT EXISTS "{schema}"."{leases}" (
    name       TEXT   PRIMARY KEY,
    owner      TEXT   NOT NULL,
    epoch      BIGINT NOT NULL, -- raised each time the lease changes hands, from 1
    expires_at BIGINT NOT NULL  -- microseconds since the Unix epoch; 0 once released
);
