-- Schema of the SQLite recorder, version 1 (kept in `PRAGMA user_version`).
--
-- `{prefix}` is replaced by the configured table prefix (empty by default; letters, digits and
-- underscores only). Every statement is idempotent: the recorder runs this file on every open,
-- inside a `BEGIN IMMEDIATE` transaction, so that several table sets (one per prefix) can share
-- one database file.

-- The global log. `position` is the rowid; AUTOINCREMENT makes SQLite keep the highest
-- position ever used (in `sqlite_sequence`) so that positions are never reused after the last
-- rows are deleted: a follower whose cursor has passed them would otherwise skip new events.
CREATE TABLE IF NOT EXISTS {prefix}events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,      -- from 1, contiguous within a stream
    event_id       BLOB    NOT NULL,      -- 16 bytes of a UUID (v7)
    topic          TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    timestamp      INTEGER NOT NULL,      -- microseconds since the Unix epoch, UTC
    payload        BLOB    NOT NULL,
    metadata       TEXT,                  -- JSON of causation id, correlation id and user map;
                                          -- NULL when there are none
    UNIQUE (stream_id, version),          -- also the index for stream reads and max(version)
    UNIQUE (event_id)                     -- also the index for lookups by event id
);

-- Topic filters on the notification log: matching rows come out in position order.
CREATE INDEX IF NOT EXISTS {prefix}events_by_topic ON {prefix}events (topic, position);

-- Positions of upstream logs already processed, written in the same transaction as the
-- events they caused (exactly-once processing).
CREATE TABLE IF NOT EXISTS {prefix}tracking (
    upstream TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (upstream, position)
) WITHOUT ROWID;

-- Snapshots of entity state; deleted with their stream.
CREATE TABLE IF NOT EXISTS {prefix}snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    topic          TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    created_on     INTEGER NOT NULL,      -- microseconds since the Unix epoch, UTC
    modified_on    INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;

-- Leases of competing instances of a follower (one per partition of its upstream, and one per
-- live instance). A tracked append that carries a lease is written only while the lease is
-- held at its epoch and unexpired. Times are this machine's clock, which every process
-- sharing the file shares.
CREATE TABLE IF NOT EXISTS {prefix}leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,      -- raised each time the lease changes hands, from 1
    expires_at INTEGER NOT NULL       -- microseconds since the Unix epoch; 0 once released
) WITHOUT ROWID;
