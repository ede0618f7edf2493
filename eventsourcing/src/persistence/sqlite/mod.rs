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

mod append;
mod config;
mod error;
mod group_commit;
mod inspect;
mod leases;
mod pool;
mod read;
mod rows;
mod snapshots;
mod sql;
mod watch;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use uuid::Uuid;

pub use config::{SqliteConfig, Synchronous, IN_MEMORY};
pub use sql::SCHEMA_VERSION;

use error::from_sqlite;
use group_commit::GroupWriter;
use pool::STATEMENT_CACHE;
use sql::Statements;

use super::error::PersistenceError;
use super::recorder::{AdminRecorder, AggregateRecorder, ApplicationRecorder, ProcessRecorder};
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StreamAppend, Tracking,
};

/// A recorder keeping events, tracking records and snapshots in a SQLite database.
///
/// Implements every recorder trait (so it is a [`Storage`](super::Storage)). See the
/// [module documentation](self) for durability, pragmas and the schema; the code is laid out
/// as the PostgreSQL recorder's: `append.rs`, `read.rs`, `snapshots.rs`, `rows.rs`, `sql.rs`,
/// `error.rs`, `config.rs`, `pool.rs` (connections) and `group_commit.rs`.
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
        sql::check_stored_version(&writer)?;
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
        sql::create_or_check(&mut writer, &config.table_prefix)?;
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
        sql::stored_version(&self.lock_writer())
    }

    /// Transactions the writer has committed for groups of appends: each is one `fsync` with
    /// [`Synchronous::Full`], however many concurrent appends it holds (`group_commits` below
    /// the number of appends shows them sharing).
    #[must_use]
    pub fn group_commits(&self) -> u64 {
        self.writer.commits()
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
        self.load_stream(stream_id, query, visit)
    }
}

impl AdminRecorder for SqliteRecorder {
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.load_event_by_id(event_id)
    }

    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.delete_stream_and_snapshots(stream_id)
    }

    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.update_in_place(events)
    }
}

impl ApplicationRecorder for SqliteRecorder {
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        self.load_notifications(query, into)
    }

    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.load_max_position()
    }
}

impl ProcessRecorder for SqliteRecorder {
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.load_max_tracking_position(upstream)
    }

    fn leases(&self) -> Option<&dyn crate::persistence::LeaseRecorder> {
        Some(self)
    }
}
