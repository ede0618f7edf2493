//! The SQLite recorder: the embedded, durable default store.
//!
//! # Opening
//!
//! ```
//! use eventsourcing::persistence::{ApplicationRecorder, SqliteConfig, SqliteRecorder, Synchronous};
//!
//! # fn main() -> Result<(), eventsourcing::PersistenceError> {
//! # let dir = std::env::temp_dir().join(format!("es-doc-{}", uuid::Uuid::now_v7()));
//! # std::fs::create_dir(&dir).map_err(|e| eventsourcing::PersistenceError::Config(e.to_string()))?;
//! # let path = dir.join("app.db");
//! // A file (created if missing; its directory must exist), FULL durability by default.
//! let recorder = SqliteRecorder::open(SqliteConfig::new(&path))?;
//! assert_eq!(recorder.max_position()?, 0);
//! drop(recorder);
//!
//! // Trading the last commits on power loss for faster commits:
//! let fast = SqliteRecorder::open(SqliteConfig::new(&path).synchronous(Synchronous::Normal))?;
//! # drop(fast);
//! # let _ = std::fs::remove_dir_all(&dir);
//!
//! // A private in-memory database, gone when the recorder is dropped:
//! let scratch = SqliteRecorder::in_memory()?;
//! # Ok(()) }
//! ```
//!
//! Applications usually open it through a URL: `Application::open("sqlite://app.db")`, or
//! `Application::open_default()`, which uses `sqlite://eventsourcing.db` unless
//! `EVENTSOURCING_URL` says otherwise.
//!
//! # Durability: `synchronous = FULL` by default
//!
//! The database runs in WAL (write-ahead log) mode. In WAL mode the file is never corrupted by
//! a crash at any setting; the `synchronous` pragma only decides whether a commit that has
//! *returned* survives a power loss or an operating-system crash:
//!
//! - [`Synchronous::Full`] (default) syncs the log on every commit: once `append` returns, the
//!   events are on disk. Cost: one `fsync` per commit (from tens of microseconds on a laptop
//!   SSD to milliseconds on network or rotating disks), so batch events into one `save` when
//!   throughput matters.
//! - [`Synchronous::Normal`] syncs only at checkpoints: commits are much cheaper, but the last
//!   commits before a power loss can be rolled back, even though callers were told they
//!   succeeded and may already have acted on them (published, replied to a user). A crash of
//!   the process alone loses nothing.
//!
//! An event store is a system of record, so the default is the setting that never forgets an
//! acknowledged event; choose `Normal` knowingly.
//!
//! # Pragmas and what they cost
//!
//! | pragma | value | why, and the cost |
//! |---|---|---|
//! | `journal_mode` | `WAL` | readers never block the writer and the writer never blocks readers; costs a `-wal` and a `-shm` file beside the database, and the database must not live on a network file system |
//! | `synchronous` | `FULL` / `NORMAL` | see above: one `fsync` a commit, or none |
//! | `busy_timeout` | 5 s (configurable) | waits for another process's write lock instead of failing at once; a writer waits at most this long before [`PersistenceError::Busy`] |
//! | `user_version` | [`SCHEMA_VERSION`] | the schema version; free |
//! | `query_only` | on, read connections only | a read connection can never write |
//!
//! WAL's automatic checkpoint (every 1000 pages) is left at SQLite's default.
//!
//! # Connections and concurrency
//!
//! One writer connection sits behind a mutex; every write runs in a `BEGIN IMMEDIATE`
//! transaction, which takes SQLite's write lock up front, so the expected-version check and
//! the inserts happen under the lock and a concurrent writer (in this process or another)
//! waits instead of failing half-way. Concurrent appends (with or without tracking) share
//! transactions, and so fsyncs, by group commit: each runs in a savepoint of the open group
//! transaction, a failing one rolls back its own rows only, and each is acknowledged after the
//! commit that holds it (see `group_commit.rs` and [`SqliteRecorder::group_commits`]).
//! Snapshots, deletes and updates commit any open group first, then run alone. Reads go through a small
//! pool of read-only connections and run concurrently with the writer. Because SQLite has a
//! single writer, positions commit in increasing order and the global log is gap-free for
//! readers.
//!
//! An in-memory database (`:memory:`) is private to one connection, so there every read also
//! goes through the writer connection.
//!
//! Statements are compiled once per connection (`prepare_cached`).
//!
//! # Schema
//!
//! Created by the recorder when missing, versioned with `PRAGMA user_version`
//! ([`SCHEMA_VERSION`]); a database with a newer version is refused with
//! [`PersistenceError::SchemaVersion`] and left untouched. The tables can carry a prefix
//! ([`SqliteConfig::table_prefix`]) so that several applications share one file.
//!
//! ```sql
#![doc = include_str!("schema.sql")]
//! ```
//!
//! Optimistic concurrency has two lines of defence: the `max(version)` check against each
//! stream's expected version inside the transaction, and the `UNIQUE (stream_id, version)`
//! constraint. Constraint violations are classified by SQLite's extended error code, never
//! by message text.

mod config;
mod errors;
mod group_commit;
mod inspect;
mod rows;
mod schema;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OpenFlags, Transaction, TransactionBehavior};

use group_commit::{GroupWriter, WriterState};
use uuid::Uuid;

pub use config::{SqliteConfig, Synchronous, IN_MEMORY};
pub use schema::SCHEMA_VERSION;

use errors::{from_sqlite, is_unique_violation};
use rows::{
    clamp_i64, count_u64, decode_event, decode_event_ref, decode_snapshot, encode_event, limit_i64,
};
use schema::Statements;

use super::error::PersistenceError;
use super::recorder::{
    check_not_tracked, validate_append, validate_text, AdminRecorder, AggregateRecorder,
    ApplicationRecorder, ProcessRecorder, SnapshotRecorder,
};
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};

/// The writer connection held for work outside the groups of appends.
struct Writer<'a>(std::sync::MutexGuard<'a, WriterState>);

impl std::ops::Deref for Writer<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

/// Statements per connection kept compiled (the recorder runs 16 distinct ones).
const STATEMENT_CACHE: usize = 32;

/// A recorder keeping events, tracking records and snapshots in a SQLite database.
///
/// Implements [`AggregateRecorder`], [`ApplicationRecorder`], [`ProcessRecorder`] and
/// [`SnapshotRecorder`] (so it is a [`Storage`](super::Storage)). See the
/// [module documentation](self) for durability, pragmas and the schema.
#[derive(Debug)]
pub struct SqliteRecorder {
    /// The one write connection; concurrent appends commit on it in groups.
    writer: GroupWriter,
    /// Idle read connections; `None` for an in-memory database (reads use the writer).
    readers: Option<Mutex<Vec<Connection>>>,
    sql: Statements,
    config: SqliteConfig,
}

impl SqliteRecorder {
    /// Opens (creating if needed) the database `config` names, switches it to WAL mode, applies
    /// the `synchronous` setting and creates the schema if missing.
    ///
    /// # Errors
    /// [`PersistenceError::Config`] for a bad table prefix or when WAL mode cannot be enabled;
    /// [`PersistenceError::Unavailable`] when the file cannot be opened (a missing directory,
    /// no permission); [`PersistenceError::SchemaVersion`] for a database written by newer
    /// code; [`PersistenceError::Corrupt`] for a file that is not a database; other backend
    /// errors.
    pub fn open(config: SqliteConfig) -> Result<Self, PersistenceError> {
        config.validate()?;
        let mut writer = if config.is_in_memory() {
            Connection::open_in_memory()
        } else {
            Connection::open_with_flags(
                &config.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        }
        .map_err(from_sqlite)?;
        writer
            .busy_timeout(config.busy_timeout)
            .map_err(from_sqlite)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::check_stored_version(&writer)?;
        if !config.is_in_memory() {
            let mode: String = writer
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(from_sqlite)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(PersistenceError::Config(format!(
                    "SQLite database {} cannot use WAL mode (journal_mode is {mode})",
                    config.path.display()
                )));
            }
        }
        writer
            .pragma_update(None, "synchronous", config.synchronous.as_sql())
            .map_err(from_sqlite)?;
        schema::create_or_check(&mut writer, &config.table_prefix)?;
        if let Some(pages) = config.max_page_count {
            writer
                .pragma_update(None, "max_page_count", pages)
                .map_err(from_sqlite)?;
        }
        let readers = (!config.is_in_memory()).then(|| Mutex::new(Vec::new()));
        Ok(Self {
            writer: GroupWriter::new(writer),
            readers,
            sql: Statements::new(&config.table_prefix),
            config,
        })
    }

    /// Opens the database file at `path` with the default settings ([`SqliteConfig::new`]).
    ///
    /// # Errors
    /// As [`SqliteRecorder::open`].
    pub fn open_path(path: impl Into<PathBuf>) -> Result<Self, PersistenceError> {
        Self::open(SqliteConfig::new(path))
    }

    /// A private in-memory database.
    ///
    /// # Errors
    /// Backend errors (out of memory).
    pub fn in_memory() -> Result<Self, PersistenceError> {
        Self::open(SqliteConfig::in_memory())
    }

    /// The settings this recorder was opened with.
    #[must_use]
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// The `synchronous` setting in force on the writer connection, read back from SQLite;
    /// `None` for a value other than NORMAL or FULL.
    ///
    /// # Errors
    /// Backend errors.
    pub fn synchronous(&self) -> Result<Option<Synchronous>, PersistenceError> {
        let conn = self.lock_writer();
        let value: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(from_sqlite)?;
        Ok(Synchronous::from_pragma(value))
    }

    /// The journal mode in force (`"wal"` for files, `"memory"` in memory).
    ///
    /// # Errors
    /// Backend errors.
    pub fn journal_mode(&self) -> Result<String, PersistenceError> {
        let conn = self.lock_writer();
        conn.pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(from_sqlite)
    }

    /// The schema version stored in the database.
    ///
    /// # Errors
    /// Backend errors.
    pub fn schema_version(&self) -> Result<i64, PersistenceError> {
        schema::stored_version(&self.lock_writer())
    }

    /// The writer connection, with no group of appends open (an open one commits first).
    fn lock_writer(&self) -> Writer<'_> {
        // A panic while the writer was held cannot leave a half-written transaction behind:
        // rusqlite rolls an unfinished transaction back when it drops, and `write` rolls back
        // any transaction still open before it begins a new one.
        Writer(self.writer.exclusive())
    }

    /// Transactions the writer has committed for groups of appends: each is one `fsync` with
    /// [`Synchronous::Full`], however many concurrent appends it holds (`group_commits` below
    /// the number of appends shows them sharing).
    #[must_use]
    pub fn group_commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer, committing when it returns
    /// `Ok` and rolling back otherwise.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        let mut conn = self.lock_writer();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(from_sqlite)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(from_sqlite)?;
        let value = f(&tx)?;
        tx.commit().map_err(from_sqlite)?;
        Ok(value)
    }

    /// Runs `f` on a read connection (the writer for an in-memory database).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        let Some(pool) = &self.readers else {
            return f(&self.lock_writer());
        };
        let idle = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = f(&conn);
        let mut idle = pool.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.config.max_idle_readers {
            idle.push(conn);
        }
        result
    }

    fn open_reader(&self) -> Result<Connection, PersistenceError> {
        let conn = Connection::open_with_flags(
            &self.config.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(from_sqlite)?;
        conn.busy_timeout(self.config.busy_timeout)
            .map_err(from_sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "query_only", true)
            .map_err(from_sqlite)?;
        Ok(conn)
    }

    fn max_version(conn: &Connection, sql: &str, stream_id: &str) -> Result<u64, PersistenceError> {
        let max: Option<i64> = conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([stream_id], |row| row.get(0)))
            .map_err(from_sqlite)?;
        max.map_or(Ok(0), |v| {
            u64::try_from(v).map_err(|_| PersistenceError::Corrupt {
                detail: format!("events of stream {stream_id:?} have a negative version {v}"),
            })
        })
    }

    /// Explains a unique violation on inserting `event` of `append`: a duplicate event id,
    /// or (when the version check is bypassed) a version already taken.
    fn insert_conflict(
        &self,
        tx: &Connection,
        append: &StreamAppend,
        event: &StoredEvent,
    ) -> PersistenceError {
        let id_taken = tx
            .prepare_cached(&self.sql.event_id_exists)
            .and_then(|mut s| s.exists([event.metadata.event_id.as_bytes().as_slice()]));
        match id_taken {
            Ok(true) => PersistenceError::InvalidBatch {
                stream_id: append.stream_id.clone(),
                reason: format!("event id {} is already stored", event.metadata.event_id),
            },
            Ok(false) => match Self::max_version(tx, &self.sql.max_version, &append.stream_id) {
                Ok(actual) => PersistenceError::Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected_version,
                    actual,
                },
                Err(error) => error,
            },
            Err(error) => from_sqlite(error),
        }
    }

    fn append_inner(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        validate_append(batch, tracking)?;
        let encoded = batch
            .iter()
            .map(|a| {
                a.events
                    .iter()
                    .map(encode_event)
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tracked = tracking
            .map(|t| {
                i64::try_from(t.position)
                    .map(|position| (t, position))
                    .map_err(|_| PersistenceError::Config(format!(
                        "tracking position {} of upstream `{}` does not fit a 64-bit signed integer",
                        t.position, t.upstream
                    )))
            })
            .transpose()?;
        if tracked.is_none() && batch.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.append(|tx| {
            if !self.config.skip_version_check {
                for append in batch {
                    let actual = Self::max_version(tx, &self.sql.max_version, &append.stream_id)?;
                    if actual != append.expected_version {
                        return Err(PersistenceError::Conflict {
                            stream_id: append.stream_id.clone(),
                            expected: append.expected_version,
                            actual,
                        });
                    }
                }
            }
            if let Some((t, position)) = tracked {
                // Under the write lock: no other writer can track meanwhile.
                let max: Option<i64> = tx
                    .prepare_cached(&self.sql.max_tracking)
                    .and_then(|mut s| s.query_row([&t.upstream], |row| row.get(0)))
                    .map_err(from_sqlite)?;
                check_not_tracked(t, max.and_then(|m| u64::try_from(m).ok()))?;
                let inserted = tx
                    .prepare_cached(&self.sql.insert_tracking)
                    .and_then(|mut s| s.execute(params![t.upstream, position]));
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(PersistenceError::AlreadyTracked {
                            upstream: t.upstream.clone(),
                            position: t.position,
                        })
                    }
                    Err(e) => return Err(from_sqlite(e)),
                }
            }
            let mut positions = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
            let mut insert = tx
                .prepare_cached(&self.sql.insert_event)
                .map_err(from_sqlite)?;
            for (append, encoded) in batch.iter().zip(&encoded) {
                for (event, e) in append.events.iter().zip(encoded) {
                    let row = insert.insert(params![
                        append.stream_id,
                        e.version,
                        e.event_id.as_slice(),
                        event.topic,
                        e.schema_version,
                        e.timestamp,
                        event.payload,
                        e.metadata,
                    ]);
                    let position = match row {
                        Ok(position) => position,
                        Err(error) if is_unique_violation(&error) => {
                            return Err(self.insert_conflict(tx, append, event));
                        }
                        Err(error) => return Err(from_sqlite(error)),
                    };
                    positions.push(u64::try_from(position).map_err(|_| {
                        PersistenceError::Corrupt {
                            detail: format!("SQLite assigned a negative position {position}"),
                        }
                    })?);
                }
            }
            Ok(positions)
        })
    }

    fn query_events<P: rusqlite::Params>(
        conn: &Connection,
        sql: &str,
        params: P,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
        let mut rows = stmt.query(params).map_err(from_sqlite)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(from_sqlite)? {
            events.push(decode_event(row)?);
        }
        Ok(events)
    }
}

impl AggregateRecorder for SqliteRecorder {
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.append_inner(batch, tracking)
    }

    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let from = query.from_version.unwrap_or(0);
        if i64::try_from(from).is_err() {
            return Ok(());
        }
        let (from, to) = (
            clamp_i64(from),
            query.to_version.map_or(i64::MAX, clamp_i64),
        );
        let limit = query.limit.map_or(-1, limit_i64);
        let sql = if query.descending {
            &self.sql.select_events_desc
        } else {
            &self.sql.select_events_asc
        };
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
            let mut rows = stmt
                .query(params![stream_id, from, to, limit])
                .map_err(from_sqlite)?;
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                if visit(decode_event_ref(row)?).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }
}

impl AdminRecorder for SqliteRecorder {
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.read(|conn| {
            let mut events = Self::query_events(
                conn,
                &self.sql.event_by_id,
                [event_id.as_bytes().as_slice()],
            )?;
            Ok(events.pop())
        })
    }

    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.write(|tx| {
            tx.prepare_cached(&self.sql.delete_snapshots)
                .and_then(|mut s| s.execute([stream_id]))
                .map_err(from_sqlite)?;
            let deleted = tx
                .prepare_cached(&self.sql.delete_events)
                .and_then(|mut s| s.execute([stream_id]))
                .map_err(from_sqlite)?;
            Ok(count_u64(deleted))
        })
    }

    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        validate_text(events)?;
        let not_found = |event: &StoredEvent| PersistenceError::EventNotFound {
            stream_id: event.stream_id.clone(),
            version: event.version,
        };
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            // A version beyond SQLite's range cannot be stored, so it is not found.
            encoded.push(encode_event(event).map_err(|_| not_found(event))?);
        }
        self.write(|tx| {
            let mut update = tx
                .prepare_cached(&self.sql.update_event)
                .map_err(from_sqlite)?;
            for (event, e) in events.iter().zip(&encoded) {
                let changed = update.execute(params![
                    event.stream_id,
                    e.version,
                    e.event_id.as_slice(),
                    event.topic,
                    e.schema_version,
                    e.timestamp,
                    event.payload,
                    e.metadata,
                ]);
                match changed {
                    Ok(0) => return Err(not_found(event)),
                    Ok(_) => {}
                    Err(error) if is_unique_violation(&error) => {
                        return Err(PersistenceError::InvalidBatch {
                            stream_id: event.stream_id.clone(),
                            reason: format!(
                                "event id {} is already stored for another event",
                                event.metadata.event_id
                            ),
                        })
                    }
                    Err(error) => return Err(from_sqlite(error)),
                }
            }
            Ok(())
        })
    }
}

impl ApplicationRecorder for SqliteRecorder {
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let Ok(from) = i64::try_from(query.from_position) else {
            return Ok(());
        };
        let to = query.to_position.map_or(i64::MAX, clamp_i64);
        let start = into.len();
        let result = if query.topics.is_empty() {
            // The statement has no `LIMIT` (see `Statements::notifications`): take `limit`
            // rows and stop.
            self.read(|conn| {
                let mut stmt = conn
                    .prepare_cached(&self.sql.notifications)
                    .map_err(from_sqlite)?;
                let mut rows = stmt.query(params![from, to]).map_err(from_sqlite)?;
                while into.len() - start < query.limit {
                    let Some(row) = rows.next().map_err(from_sqlite)? else {
                        break;
                    };
                    into.push(decode_event(row)?);
                }
                Ok(())
            })
        } else {
            let limit = limit_i64(query.limit);
            let topics = serde_json::to_string(&query.topics)
                .map_err(|e| PersistenceError::Config(format!("topic filter: {e}")))?;
            self.read(|conn| {
                into.extend(Self::query_events(
                    conn,
                    &self.sql.notifications_by_topic,
                    params![from, to, limit, topics],
                )?);
                Ok(())
            })
        };
        if result.is_err() {
            into.truncate(start);
        }
        result
    }

    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.read(|conn| {
            let max: i64 = conn
                .prepare_cached(&self.sql.max_position)
                .and_then(|mut s| s.query_row([], |row| row.get(0)))
                .map_err(from_sqlite)?;
            u64::try_from(max).map_err(|_| PersistenceError::Corrupt {
                detail: format!("events row at negative position {max}"),
            })
        })
    }
}

impl ProcessRecorder for SqliteRecorder {
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.read(|conn| {
            let max: Option<i64> = conn
                .prepare_cached(&self.sql.max_tracking)
                .and_then(|mut s| s.query_row([upstream], |row| row.get(0)))
                .map_err(from_sqlite)?;
            max.map(|p| {
                u64::try_from(p).map_err(|_| PersistenceError::Corrupt {
                    detail: format!(
                        "tracking row of upstream {upstream:?} at negative position {p}"
                    ),
                })
            })
            .transpose()
        })
    }
}

impl SnapshotRecorder for SqliteRecorder {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        let version = i64::try_from(snapshot.version).map_err(|_| {
            PersistenceError::Config(format!(
                "snapshot version {} of stream `{}` does not fit a 64-bit signed integer",
                snapshot.version, snapshot.stream_id
            ))
        })?;
        self.write(|tx| {
            tx.prepare_cached(&self.sql.put_snapshot)
                .and_then(|mut s| {
                    s.execute(params![
                        snapshot.stream_id,
                        version,
                        snapshot.topic,
                        i64::from(snapshot.schema_version),
                        snapshot.state,
                        snapshot.created_on.as_micros(),
                        snapshot.modified_on.as_micros(),
                    ])
                })
                .map_err(from_sqlite)?;
            Ok(())
        })
    }

    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let at_most = at_most_version.map_or(i64::MAX, clamp_i64);
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&self.sql.latest_snapshot)
                .map_err(from_sqlite)?;
            let mut rows = stmt
                .query(params![stream_id, at_most])
                .map_err(from_sqlite)?;
            rows.next()
                .map_err(from_sqlite)?
                .map(decode_snapshot)
                .transpose()
        })
    }

    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.write(|tx| {
            tx.prepare_cached(&self.sql.delete_snapshots)
                .and_then(|mut s| s.execute([stream_id]))
                .map(count_u64)
                .map_err(from_sqlite)
        })
    }
}
