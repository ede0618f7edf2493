//! The schema file, its version, and the SQL statements run against it.

use rusqlite::{Connection, TransactionBehavior};

use super::error::{from_sqlite, BACKEND};
use crate::persistence::PersistenceError;

/// The documented schema, with `{prefix}` standing for the table prefix.
pub(super) const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The schema version this code writes and reads, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// The columns of an event row, in the order `decode_event` reads them.
const EVENT_COLUMNS: &str =
    "position, stream_id, version, event_id, topic, schema_version, timestamp, payload, metadata";

/// The columns of a snapshot row, in the order `decode_snapshot` reads them.
const SNAPSHOT_COLUMNS: &str =
    "stream_id, version, topic, schema_version, state, created_on, modified_on";

/// Every statement the recorder runs, with the table prefix filled in once at open. They are
/// run through `prepare_cached`, so each is compiled once per connection.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    pub(super) max_version: String,
    pub(super) insert_event: String,
    pub(super) event_id_exists: String,
    pub(super) insert_tracking: String,
    pub(super) select_events_asc: String,
    pub(super) select_events_desc: String,
    pub(super) event_by_id: String,
    pub(super) delete_events: String,
    pub(super) delete_snapshots: String,
    pub(super) update_event: String,
    pub(super) notifications: String,
    pub(super) notifications_by_topic: String,
    pub(super) max_position: String,
    pub(super) max_tracking: String,
    pub(super) put_snapshot: String,
    pub(super) latest_snapshot: String,
    pub(super) acquire_lease: String,
    pub(super) renew_lease: String,
    pub(super) release_lease: String,
    pub(super) list_leases: String,
    pub(super) remove_lease: String,
    pub(super) lease_held: String,
}

impl Statements {
    pub(super) fn new(prefix: &str) -> Self {
        let t = |sql: &str| {
            sql.replace("{prefix}", prefix)
                .replace("{events}", EVENT_COLUMNS)
                .replace("{snapshots}", SNAPSHOT_COLUMNS)
        };
        Self {
            max_version: t("SELECT max(version) FROM {prefix}events WHERE stream_id = ?1"),
            insert_event: t("INSERT INTO {prefix}events \
                 (stream_id, version, event_id, topic, schema_version, timestamp, payload, metadata) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            event_id_exists: t("SELECT 1 FROM {prefix}events WHERE event_id = ?1"),
            insert_tracking: t("INSERT INTO {prefix}tracking (upstream, position) VALUES (?1, ?2)"),
            select_events_asc: t("SELECT {events} FROM {prefix}events \
                 WHERE stream_id = ?1 AND version BETWEEN ?2 AND ?3 ORDER BY version ASC LIMIT ?4"),
            select_events_desc: t("SELECT {events} FROM {prefix}events \
                 WHERE stream_id = ?1 AND version BETWEEN ?2 AND ?3 ORDER BY version DESC LIMIT ?4"),
            event_by_id: t("SELECT {events} FROM {prefix}events WHERE event_id = ?1"),
            delete_events: t("DELETE FROM {prefix}events WHERE stream_id = ?1"),
            delete_snapshots: t("DELETE FROM {prefix}snapshots WHERE stream_id = ?1"),
            // Compare and swap on the event id: an event deleted and written again between a
            // migration's read and its write is not overwritten.
            update_event: t("UPDATE {prefix}events SET topic = ?4, \
                 schema_version = ?5, timestamp = ?6, payload = ?7, metadata = ?8 \
                 WHERE stream_id = ?1 AND version = ?2 AND event_id = ?3"),
            // No `LIMIT ?`: SQLite re-prepares a statement whenever a parameter that its plan
            // read (a bound `LIMIT` is one) is bound again, so a bound limit would recompile
            // this statement for every page. The caller stops stepping after its limit
            // instead; the plan (a rowid range in rowid order) reads rows one at a time.
            notifications: t("SELECT {events} FROM {prefix}events \
                 WHERE position BETWEEN ?1 AND ?2 ORDER BY position ASC"),
            notifications_by_topic: t("SELECT {events} FROM {prefix}events \
                 WHERE position BETWEEN ?1 AND ?2 \
                 AND topic IN (SELECT value FROM json_each(?4)) \
                 ORDER BY position ASC LIMIT ?3"),
            max_position: t("SELECT coalesce(max(position), 0) FROM {prefix}events"),
            max_tracking: t("SELECT max(position) FROM {prefix}tracking WHERE upstream = ?1"),
            put_snapshot: t("INSERT INTO {prefix}snapshots ({snapshots}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (stream_id, version) DO UPDATE SET topic = excluded.topic, \
                 schema_version = excluded.schema_version, state = excluded.state, \
                 created_on = excluded.created_on, modified_on = excluded.modified_on"),
            latest_snapshot: t("SELECT {snapshots} FROM {prefix}snapshots \
                 WHERE stream_id = ?1 AND version <= ?2 ORDER BY version DESC LIMIT 1"),
            // ?1 name, ?2 owner, ?3 now, ?4 expiry. Taken when expired or released (a new
            // epoch), renewed when the owner holds it (the same epoch), else no row.
            acquire_lease: t("INSERT INTO {prefix}leases (name, owner, epoch, expires_at) \
                 VALUES (?1, ?2, 1, ?4) \
                 ON CONFLICT (name) DO UPDATE SET \
                 epoch = CASE WHEN expires_at > ?3 THEN epoch ELSE epoch + 1 END, \
                 owner = excluded.owner, expires_at = excluded.expires_at \
                 WHERE expires_at <= ?3 OR owner = ?2 \
                 RETURNING epoch"),
            renew_lease: t("UPDATE {prefix}leases SET expires_at = ?5 \
                 WHERE name = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at > ?4"),
            release_lease: t("UPDATE {prefix}leases SET expires_at = 0 \
                 WHERE name = ?1 AND owner = ?2 AND epoch = ?3"),
            remove_lease: t("DELETE FROM {prefix}leases \
                 WHERE name = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at <= ?4"),
            list_leases: t("SELECT name, owner, epoch, expires_at FROM {prefix}leases \
                 WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name"),
            lease_held: t("SELECT 1 FROM {prefix}leases \
                 WHERE name = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at > ?4"),
        }
    }
}

/// The schema version stored in the database (0 for a new database).
pub(super) fn stored_version(conn: &Connection) -> Result<i64, PersistenceError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(from_sqlite)
}

/// Refuses a database written by newer code (or with a nonsensical version).
fn check_version(found: i64) -> Result<(), PersistenceError> {
    if (0..=SCHEMA_VERSION).contains(&found) {
        Ok(())
    } else {
        Err(PersistenceError::SchemaVersion {
            backend: BACKEND,
            found,
            supported: SCHEMA_VERSION,
        })
    }
}

/// Checks the stored version without writing anything (so that a newer database is left
/// untouched, even its journal mode).
pub(super) fn check_stored_version(conn: &Connection) -> Result<(), PersistenceError> {
    check_version(stored_version(conn)?)
}

/// Creates the tables for `prefix` if missing and records the schema version, in one
/// `BEGIN IMMEDIATE` transaction (so that two processes opening a new file at once do not
/// race), re-checking the version under the lock.
pub(super) fn create_or_check(conn: &mut Connection, prefix: &str) -> Result<(), PersistenceError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(from_sqlite)?;
    let found = stored_version(&tx)?;
    check_version(found)?;
    tx.execute_batch(&SCHEMA_SQL.replace("{prefix}", prefix))
        .map_err(from_sqlite)?;
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(from_sqlite)?;
    }
    tx.commit().map_err(from_sqlite)
}
