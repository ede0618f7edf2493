//! The PostgreSQL recorder: many processes on many machines sharing one gap-free event log.
//!
//! Enabled by the `postgres` feature. [`PostgresRecorder`] implements every recorder trait
//! ([`AggregateRecorder`], [`ApplicationRecorder`], [`ProcessRecorder`] and
//! [`SnapshotRecorder`]) with the blocking `postgres` driver behind an `r2d2` connection pool,
//! so no async runtime is needed.
//!
//! [`SnapshotRecorder`]: super::SnapshotRecorder
//!
//! # Configuration
//!
//! [`PostgresConfig`] holds the server URL (libpq style), the schema (default `public`), a
//! table prefix (default none), the pool size (8), the connect timeout (10 s), the server-side
//! statement and lock timeout (30 s) and the idle-in-transaction timeout (60 s). Every name is
//! validated as `[A-Za-z_][A-Za-z0-9_]{0,62}` before SQL is built; every value is a bind
//! parameter. Through [`crate::Application::open`] the same settings come from the URL:
//! `postgres://user@host/db?schema=shop&table_prefix=es_&pool_size=4&statement_timeout_ms=5000`
//! (other query parameters go to the driver).
//!
//! # Schema
//!
//! Created on open if missing, from `schema.sql` next to this module: tables `events`
//! (`position BIGINT` primary key: from the transaction id in the default mode, an identity
//! with the table lock; `stream_id TEXT`, `version BIGINT`, `event_id UUID`
//! unique, `topic TEXT`, `schema_version INT`, `timestamp BIGINT` microseconds, `payload
//! BYTEA`, `metadata JSONB` — NULL when the metadata has no causation, correlation or user
//! values — and a unique index on `(stream_id, version)`), `tracking` (`(upstream, position)`
//! primary key), `snapshots` (`(stream_id, version)` primary key) and `eventsourcing_schema`
//! (the schema version, 1, and the ordering mode). A database with a newer schema version is
//! refused with [`PersistenceError::Config`], and so is a store opened in another ordering
//! mode than the one that assigned its positions.
//!
//! The payload is `BYTEA`, chosen by measurement and because a transcoder may compress or
//! encrypt it (bytes that are not JSON). Raw SQL, 10,000 events of 200-byte JSON written as
//! 100 appends of 100 and read back by stream and by position, two runs of two rounds each
//! (`cargo test --release -p eventsourcing-tests --test postgres -- --ignored
//! --nocapture payload_column_types`, same machine and load as the figures below):
//!
//! | column | write 10k | stream load | notification scan |
//! |---|---|---|---|
//! | `bytea` (chosen) | 407, 408, 374, 372 ms | 20, 13, 22, 13 ms | 15, 18, 20, 16 ms |
//! | `json` | 460, 441, 384, 381 ms | 17, 27, 21, 17 ms | 30, 22, 23, 19 ms |
//! | `jsonb` | 659, 508, 372, 357 ms | 27, 32, 29, 26 ms | 28, 35, 28, 27 ms |
//!
//! Writes are dominated by the 100 commits (within noise, `jsonb` sometimes slower: it parses
//! and re-encodes on write); reads of `jsonb` are 1.3-2x slower than `bytea` (it is printed
//! back to text), `json` 1-1.5x (it is returned as stored). Both only hold plain JSON, so they
//! would exclude compressed or encrypted payloads, and `jsonb` does not round-trip bytes
//! exactly (key order, whitespace, duplicate keys). What they would
//! buy is server-side queries on the payload, which the recorder does not offer.
//!
//! # Gap-free order
//!
//! A follower reads the log by position and remembers the last position it saw. With a plain
//! sequence, two writers A and B can take positions 10 and 11, B commits first, the follower
//! reads 11 and moves on, and A's event 10 becomes visible only afterwards: it is skipped for
//! ever. The recorder prevents this in one of two ways ([`OrderingMode`]).
//!
//! ## Transaction ids ([`OrderingMode::TransactionId`], the default)
//!
//! The insert sets `position = pg_current_xact_id() * 2^20 + ordinal` (plus the store's
//! position offset, see below), the ordinal counting the events of the append from 0 (so at
//! most [`MAX_EVENTS_PER_XID_APPEND`] = 2^20 events an append, else
//! [`PersistenceError::LimitExceeded`]). It is a multiplication, not a shift: near the end of
//! the 64-bit position space (about 2^43 transactions) it fails before the commit with
//! [`PersistenceError::PositionOverflow`] where a shift would wrap. Readers
//! (`select_notifications`, `max_position`) add `position < pg_snapshot_xmin(...) * 2^20`:
//! only rows of
//! transactions older than the oldest transaction still running in the cluster.
//!
//! Why no event is skipped: every transaction id below the snapshot's `xmin` has finished
//! (committed or rolled back), and a transaction that has no id yet will get one at least
//! `xmin`, so the set of rows below the horizon is final: no row can appear there later. A
//! follower that has read up to position `p` has only read rows below some horizon `h > p`;
//! any row committed afterwards belongs to a transaction id at least `h >> 20`, hence has a
//! position above everything it has read. A slow writer A does not get skipped: while A is
//! open the horizon stays at A's id, so B's later (higher) position is not readable yet; the
//! follower waits for A instead. Position order is transaction-id order by construction, so
//! there is no "sequence taken in the opposite order of the transaction ids" problem, and the
//! follower's cursor stays a single `u64`. Positions increase but are not dense (the
//! conformance suite assumes only increasing positions). `max_position` is the highest
//! position below the horizon, so it never names a position a follower could not read in
//! order. Stream reads (`select_events`, `event_by_id`) are not filtered: they have no
//! ordering concern and see every committed event. 64-bit transaction ids shifted by 20 bits
//! overflow a `BIGINT` after 2^43 transactions (about 28 years at 10,000 tx/s).
//!
//! The cost is that the horizon is cluster-wide: any long transaction on the server, in any
//! database, delays every follower (never a writer) until it ends. This is bounded and
//! visible:
//! - our own sessions run with `statement_timeout` (30 s) and
//!   `idle_in_transaction_session_timeout` (10 s) ([`PostgresConfig::statement_timeout`],
//!   [`PostgresConfig::idle_in_transaction_timeout`]);
//! - [`PostgresRecorder::follower_lag`] returns the readable and the committed maximum
//!   position and the blocking session from `pg_stat_activity` (pid, database,
//!   `application_name`, state, transaction age), so an operator can find and end it; the
//!   equivalent SQL check is `SELECT pid, datname, application_name, state, now() -
//!   xact_start FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY
//!   age(backend_xid) DESC LIMIT 1` (prepared transactions: `pg_prepared_xacts`);
//! - read-your-writes: a recorder remembers its own last appended position, and
//!   `select_notifications`/`max_position` wait (at most
//!   [`PostgresConfig::read_own_writes_timeout`], 5 s) until the horizon has passed it, so a
//!   caller that reads right after writing sees its writes even while another transaction in
//!   the cluster (another test, another application) is still open. After the timeout they
//!   return what is readable, which is still gap-free.
//!
//! ## Restores, replicas and other clusters
//!
//! Transaction ids belong to a cluster. A store dumped and restored into another cluster
//! (`pg_dump`/`pg_restore`), or a logical-replication subscriber promoted to primary, holds
//! positions far above what the new cluster's transaction ids give: new events would get
//! lower positions than old ones, and readers (whose horizon comes from the new ids) would
//! not see the old ones. So every position is `position_offset + xid * 2^20 + ordinal`,
//! with the offset kept in the store's metadata row and read by every append and every read
//! in its own statement. On open, the recorder compares the highest stored position with
//! what the next transaction would be given; when the store is ahead, it raises the offset
//! under `LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE` (which waits for every running
//! append, of any process, and holds new ones until it commits), so that every new position
//! is above every stored one. A session that may not write cannot repair: the open fails
//! with [`PersistenceError::Config`] saying to open the store once with a role that may
//! write. A store can also become ahead under a recorder that has it open (a
//! logical-replication subscriber filled, then promoted): the first chunk of every append
//! checks, in its own statement, that no stored position reaches the next transaction id's;
//! if one does it inserts nothing, and the recorder repairs as at open and retries once.
//! Physical replicas and `pg_upgrade` keep the transaction ids and need no repair; so does
//! point-in-time recovery for the recovered events, but the transaction ids of the lost
//! transactions after the recovery target are given again, so their positions come back for
//! new events: [`PostgresRecorder::raise_positions_above`] lifts new positions above the
//! highest one a follower outside the recovered database has seen. Tests (throwaway
//! clusters): `positions_keep_increasing_across_dump_and_restore`,
//! `writers_opening_a_restored_store_at_once_never_reuse_or_lower_positions`,
//! `a_store_filled_under_open_writers_never_hides_an_in_flight_append`,
//! `positions_keep_increasing_after_promoting_a_logical_replication_subscriber`,
//! `positions_keep_increasing_across_point_in_time_recovery`.
//!
//! ## Table lock ([`OrderingMode::TableLock`])
//!
//! An appending transaction runs `LOCK TABLE events IN EXCLUSIVE MODE` before it takes
//! positions from the identity sequence (in the insert statement, which also checks the
//! streams' versions: see "Appends" below), and holds the lock until it commits. That lock
//! conflicts with other appends, updates and deletes but not with reads, so positions are
//! assigned in commit order and every reader's snapshot holds a prefix of the log (holes left
//! by rolled-back transactions are permanent and harmless). `max_position` is `max(position)`
//! of that snapshot. This is what the Python library does. Positions are dense, followers are
//! never delayed by transactions outside this store, but writers of events are serialised
//! through the commit's fsync: a stalled appender holds every other appender back (bounded
//! by the statement/lock timeout, waiting appenders fail with [`PersistenceError::Busy`]).
//!
//! A schema remembers its mode (`eventsourcing_schema.ordering`) and refuses to open in the
//! other: mixing the identity's small positions with transaction-id positions would break the
//! order. Switching a table-lock store to transaction ids is safe with every writer stopped
//! (`UPDATE eventsourcing_schema SET ordering = 'xid'`: every new position is above the old
//! ones); the other way round is not supported. URL parameter: `ordering=xid|table_lock`.
//!
//! ## Choosing a mode
//!
//! The transaction-id mode is the default: it keeps most of the unordered throughput and the
//! follower keeps up with the writers; its one weakness, follower delay by long transactions
//! elsewhere on the server, is bounded by timeouts on our sessions, observable through
//! `follower_lag`, and hidden from read-your-writes callers. Choose
//! [`OrderingMode::TableLock`] when the server is shared with workloads that hold long
//! transactions and follower latency matters more than append throughput, or when dense
//! positions are wanted. The measurements behind this, with the commands to rerun them, are
//! in `docs/POSTGRES.md`.
//!
//! # Appends and reads: round trips
//!
//! An append of one stream without a tracking record (the common case: a `save` of one
//! aggregate) is a plain `INSERT .. SELECT` in autocommit, guarded by the unique index on
//! `(stream_id, version)`, a backward probe of that index for the stream's highest version
//! (only when the expected version is above zero) and a range probe of the position index for
//! the store being ahead of the cluster (`append.rs`, `Sql::append_event`). Any other
//! append is one statement too: a CTE computes the current version of every stream of the
//! batch in the statement's snapshot, the `INSERT ... SELECT FROM UNNEST(arrays)` writes only
//! when every stream is at its expected version, and the result is either the inserted rows'
//! positions or the streams that are not (stream, expected, actual; the first in batch order is
//! reported, and nothing is written). In the transaction-id mode an append of at most 1,000
//! events without a tracking record runs that statement in autocommit: one round trip, where
//! `BEGIN`, a version `SELECT`, the `INSERT` and `COMMIT` took four. The table-lock mode (the
//! lock), tracked appends (the tracking insert) and larger batches (one statement per 1,000
//! events) run in a transaction.
//!
//! Reads stream their rows (`query_raw`): each row is decoded while the server is still
//! sending the next ones. `for_each_event` lends each row to the visitor without copying (the
//! stream id, topic and payload are borrowed from the row); the event id is read in its
//! 16-byte binary format and the metadata as the JSON text of the `jsonb` value, only when
//! it is not NULL. Streaming beats buffering the result (`Client::query`) for loads although
//! the blocking driver enters its runtime for each row: the decoding overlaps with the server
//! (figures in `docs/POSTGRES.md`).
//!
//! The sessions run with `plan_cache_mode=force_generic_plan` (unless the URL's `options` set
//! `plan_cache_mode`): otherwise the server re-plans the append statement at every execution
//! (planning costs more than executing it) and plans a stream load as a bitmap scan and a
//! sort of the whole stream instead of an ordered index scan. Topic-filtered
//! notification pages are the exception: they ask for a custom plan (`SET LOCAL
//! plan_cache_mode = force_custom_plan` in their own transaction), since the right index
//! depends on how rare the topics are.
//!
//! # Errors
//!
//! Conflicts are detected by the version check inside the insert statement and, for a writer
//! that commits between that statement's snapshot and its insert, by the unique index
//! (SQLSTATE 23505, classified by code and constraint name, never by message; the actual
//! version is then read again). A lost connection or an unreachable server is
//! [`PersistenceError::Unavailable`]; a statement or lock timeout, a deadlock or a
//! serialization failure is [`PersistenceError::Busy`]. A broken connection is dropped by the
//! pool and replaced on the next call. A row that breaks the schema's invariants (a negative
//! version, unreadable metadata) is [`PersistenceError::Corrupt`] naming its position.

// `PersistenceError` (shared by every backend) is 136 bytes, which the newer clippy's
// `result_large_err` flags on every function returning it, across the whole crate. Shrinking
// it (boxing the large variants) is a crate-wide decision, not this backend's.
#![allow(clippy::result_large_err)]

// `open`, the schema check and the trait impls are here; the impls delegate to `append`
// (writes), `read` (reads, the horizon, follower lag) and `snapshots`, which build on `sql`
// (the statements) and `rows` (binds and row decoding).
mod append;
mod config;
mod error;
mod inspect;
mod leases;
mod notify;
mod pool;
mod read;
mod rows;
mod snapshots;
mod sql;

use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use postgres::{Statement, Transaction};
use r2d2::{Pool, PooledConnection};
use uuid::Uuid;

pub use config::{is_identifier, OrderingMode, PostgresConfig, SynchronousCommit, URL_PARAMETERS};
pub use read::{Blocker, FollowerLag};

use self::config::Names;
use self::error::{classify, pool};
use self::pool::{Conn, Manager};
use self::rows::corrupt;
use self::sql::Sql;
use super::error::PersistenceError;
use super::listener::CommitListener;
use super::recorder::{AdminRecorder, AggregateRecorder, ApplicationRecorder, ProcessRecorder};
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StreamAppend, Tracking,
};

/// The schema version this code creates and understands.
///
/// Version 2 added `position_offset` (positions after a restore into another cluster).
pub const SCHEMA_VERSION: i32 = 2;

/// With [`OrderingMode::TransactionId`], `position = (xid << ORDINAL_BITS) | ordinal`.
const ORDINAL_BITS: u32 = 20;

/// The most events one append may hold with [`OrderingMode::TransactionId`].
pub const MAX_EVENTS_PER_XID_APPEND: u64 = 1 << ORDINAL_BITS;

type Connection = PooledConnection<Manager>;

/// A recorder keeping events, tracking records and snapshots in PostgreSQL.
///
/// ```no_run
/// use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
/// let recorder = PostgresRecorder::open(
///     PostgresConfig::new("postgres://postgres@127.0.0.1:5432/test").schema("shop"),
/// )?;
/// # Ok::<(), eventsourcing::PersistenceError>(())
/// ```
pub struct PostgresRecorder {
    pool: Pool<Manager>,
    config: PostgresConfig,
    names: Names,
    sql: Sql,
    /// The highest position this recorder appended (0 when none): reads wait for it.
    last_appended: AtomicU64,
    /// The highest readable horizon seen (it never moves back).
    horizon_seen: AtomicU64,
    /// The horizon at which a read-your-writes wait last timed out (0: none): while the
    /// horizon is still there, reads do not wait again.
    stalled_at: AtomicU64,
    /// How many read-your-writes waits timed out.
    stalls: AtomicU64,
    /// Whether the sessions were opened with `plan_cache_mode=force_generic_plan`.
    generic_plans: bool,
    /// The driver configuration of the pool's connections, for the dedicated ones.
    driver: postgres::Config,
    /// The store's commit channel.
    channel: String,
    /// Announces commits on the channel (`None` when `notify_commits` is off).
    notifier: Option<notify::Notifier>,
}

impl std::fmt::Debug for PostgresRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRecorder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The configuration of a dedicated connection (the notifier's, a listener's): the pool's,
/// under its own application name, so that an operator (or a test) looking for the pool's
/// sessions by name finds only those.
fn dedicated(pool: &postgres::Config, role: &str) -> postgres::Config {
    let mut config = pool.clone();
    let name = format!(
        "{}-{role}",
        pool.get_application_name().unwrap_or("eventsourcing")
    );
    config.application_name(&name);
    config
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis().max(1)
}

impl PostgresRecorder {
    /// Connects, creates the schema and tables if missing, and checks the schema version.
    ///
    /// # Errors
    /// [`PersistenceError::Config`] for invalid settings or a newer schema version;
    /// [`PersistenceError::Unavailable`] when the server cannot be reached within the connect
    /// timeout.
    pub fn open(config: PostgresConfig) -> Result<Self, PersistenceError> {
        config.validate()?;
        let names = Names::new(&config.schema, &config.table_prefix)?;
        let mut pg = postgres::Config::from_str(&config.url)
            .map_err(|e| PersistenceError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let mut options = pg.get_options().map(str::to_owned).unwrap_or_default();
        for (name, value) in [
            ("statement_timeout", millis(config.statement_timeout)),
            ("lock_timeout", millis(config.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                millis(config.idle_in_transaction_timeout),
            ),
        ] {
            options.push_str(&format!(" -c {name}={value}"));
        }
        // Pinned after the URL's own options, so it wins over them and over the server's and
        // the role's defaults: with `synchronous_commit = off` on the server, a crash takes
        // back commits that followers may have read, and their positions go to other events.
        options.push_str(&format!(
            " -c synchronous_commit={}",
            config.synchronous_commit.name()
        ));
        // Every statement of the recorder is a key or range lookup on a unique index, for
        // which the generic plan is the right one. Left to choose, the server re-plans the
        // append statement on every execution: with the arrays' lengths known, a custom plan
        // always looks cheaper than the generic one (which assumes 10 rows per UNNEST), and
        // planning the CTE took 0.17 ms against 0.06 ms to execute it (EXPLAIN ANALYZE
        // EXECUTE, PostgreSQL 15). The exception, topic-filtered notifications, asks for
        // a custom plan in its transaction (see `load_notifications` in `read.rs`). A URL's
        // own `plan_cache_mode` option wins.
        let generic_plans = !options.contains("plan_cache_mode");
        if generic_plans {
            options.push_str(" -c plan_cache_mode=force_generic_plan");
        }
        pg.options(options.trim())
            .connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name(&config.application_name);
        }
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            // Checking every connection on checkout costs a round trip per call. A dead
            // connection fails its first statement instead (a typed Unavailable error) and is
            // then dropped by the pool, because `is_closed` reports it broken.
            .test_on_check_out(false)
            .connection_timeout(config.connect_timeout)
            .build_unchecked(Manager { config: pg.clone() });
        let channel = notify::channel(&names.qualified(&names.events));
        let notifier = config
            .notify_commits
            .then(|| notify::Notifier::start(dedicated(&pg, "notify"), channel.clone()));
        let recorder = Self {
            pool,
            sql: Sql::new(&names, config.ordering),
            names,
            config,
            last_appended: AtomicU64::new(0),
            horizon_seen: AtomicU64::new(0),
            stalled_at: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            generic_plans,
            driver: pg,
            channel,
            notifier,
        };
        recorder.migrate()?;
        Ok(recorder)
    }

    /// Calls `on_commit` (on a thread of its own) after commits to this store in any process,
    /// once for each burst of them, and at least once every `poll_interval` whatever
    /// happens: a lost notification or a dead connection delays it by at most that long.
    /// The listener holds one connection of its own, reconnecting with backoff when it is
    /// lost; dropping the listener stops it. Typical use: wake a background runner
    /// (`move || waker.wake()`, with [`RunnerHandle::waker`](crate::system::RunnerHandle::waker)).
    #[must_use]
    pub fn listen_for_commits(
        &self,
        poll_interval: Duration,
        on_commit: impl Fn() + Send + 'static,
    ) -> CommitListener {
        let (config, channel) = (dedicated(&self.driver, "listen"), self.channel.clone());
        CommitListener::spawn(poll_interval, Box::new(on_commit), move |watch| {
            notify::listen_loop(&config, &channel, watch);
        })
    }

    /// How many commit announcements this recorder sent (concurrent commits share one).
    #[must_use]
    pub fn commit_notifications_sent(&self) -> u64 {
        self.notifier.as_ref().map_or(0, notify::Notifier::sent)
    }

    /// Announces a commit to listeners (see [`PostgresRecorder::listen_for_commits`]).
    pub(super) fn announce_commit(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.announce();
        }
    }

    fn conn(&self) -> Result<Connection, PersistenceError> {
        self.pool.get().map_err(pool)
    }

    fn migrate(&self) -> Result<(), PersistenceError> {
        let mut conn = self.conn()?;
        if !self.schema_is_current(&mut conn)? {
            self.create_or_upgrade(&mut conn)?;
        }
        if self.config.ordering.uses_xid() {
            self.keep_positions_increasing(&mut conn)?;
        }
        Ok(())
    }

    /// A store whose positions reach what this cluster's next transaction id would be given
    /// was written by another cluster: restored from a dump, or a promoted logical-replication
    /// subscriber. New positions would be lower than the stored ones and readers would not
    /// see the stored ones. Raises the store's position offset so that every new position is
    /// above every stored one, under a lock that waits for running appends (of every
    /// process) and holds new ones until it commits; appends read the offset in their own
    /// statement, so no process keeps a stale one. A session that may not write cannot
    /// repair: the open fails with a typed error saying what to do.
    fn keep_positions_increasing(&self, conn: &mut Connection) -> Result<(), PersistenceError> {
        let row = conn
            .client
            .query_one(&self.sql.ahead, &[])
            .map_err(classify)?;
        let ahead: bool = row
            .try_get(0)
            .map_err(|e| corrupt(None, "position check", e))?;
        if !ahead {
            return Ok(());
        }
        let repaired = (|| {
            let mut tx = conn.client.transaction().map_err(classify)?;
            tx.batch_execute(&self.sql.repair_lock).map_err(classify)?;
            tx.query_opt(&self.sql.repair, &[]).map_err(classify)?;
            tx.commit().map_err(classify)
        })();
        match repaired {
            Ok(()) => Ok(()),
            Err(PersistenceError::ReadOnly { .. }) => Err(PersistenceError::Config(format!(
                "schema `{}` holds positions above what this PostgreSQL cluster's transaction \
                 ids give (restored from another cluster?), and this session may not write: \
                 open it once with a role that may write (on the primary) to raise its \
                 position offset",
                self.names.schema
            ))),
            Err(other) => Err(other),
        }
    }

    /// Raises the store's position offset so that every new position is above `position`
    /// (and above every stored one), under the same lock as the repair at open; returns
    /// whether it changed anything. For operators after a point-in-time recovery: the
    /// transaction ids of the transactions lost after the recovery target are given again,
    /// so their positions would come back for different events, and a follower outside the
    /// recovered database that had read one (its tracking position says how far) would skip
    /// them. Pass the highest position any such follower has seen.
    ///
    /// ```no_run
    /// # use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
    /// let recorder = PostgresRecorder::open(PostgresConfig::new("postgres://localhost/db"))?;
    /// // The projection database still tracks position 766_509_057 of the lost history.
    /// recorder.raise_positions_above(766_509_057)?;
    /// # Ok::<(), eventsourcing::PersistenceError>(())
    /// ```
    ///
    /// # Errors
    /// [`PersistenceError::Unsupported`] unless positions derive from transaction ids
    /// ([`OrderingMode::TransactionId`]); [`PersistenceError::ReadOnly`] for a session that
    /// may not write; backend failures.
    pub fn raise_positions_above(&self, position: u64) -> Result<bool, PersistenceError> {
        if !self.config.ordering.uses_xid() {
            return Err(PersistenceError::Unsupported {
                backend: error::BACKEND,
                operation: "raise_positions_above",
                reason: "only positions from transaction ids (ordering=xid) have an offset",
            });
        }
        let position = i64::try_from(position).map_err(|e| PersistenceError::PositionOverflow {
            backend: error::BACKEND,
            source: Box::new(e),
        })?;
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        tx.batch_execute(&self.sql.repair_lock).map_err(classify)?;
        let raised = tx
            .query_opt(&self.sql.raise, &[&position])
            .map_err(classify)?
            .is_some();
        tx.commit().map_err(classify)?;
        Ok(raised)
    }

    /// Creates the schema or upgrades an older one, under an advisory lock.
    fn create_or_upgrade(&self, conn: &mut Connection) -> Result<(), PersistenceError> {
        let mut tx = conn.client.transaction().map_err(classify)?;
        // Serialise concurrent openers of the same schema (CREATE ... IF NOT EXISTS races).
        let key = format!("eventsourcing:{}", self.names.schema);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
            .map_err(classify)?;
        tx.batch_execute(&self.names.schema_sql())
            .map_err(classify)?;
        let meta = self.names.qualified(&self.names.meta);
        let found: Option<i32> = tx
            .query_opt(&format!("SELECT schema_version FROM {meta}"), &[])
            .map_err(classify)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(|e| corrupt(None, "schema version", e))?;
        match found {
            None => {
                tx.execute(
                    &format!("INSERT INTO {meta} (schema_version) VALUES ($1)"),
                    &[&SCHEMA_VERSION],
                )
                .map_err(classify)?;
            }
            Some(v) if v > SCHEMA_VERSION => return Err(newer_schema(v)),
            // The schema file added what the newer versions need.
            Some(v) if v < SCHEMA_VERSION => {
                tx.execute(
                    &format!("UPDATE {meta} SET schema_version = $1"),
                    &[&SCHEMA_VERSION],
                )
                .map_err(classify)?;
            }
            Some(_) => {}
        }
        self.check_ordering(&mut tx, &meta)?;
        tx.commit().map_err(classify)
    }

    /// Whether the store's schema is already the current version in this recorder's ordering
    /// mode, read with plain selects: no DDL, no lock, so an open never queues behind (or
    /// blocks) appends, and it works on a hot standby and for a role that may only read.
    /// A newer schema is the typed [`PersistenceError::SchemaVersion`].
    fn schema_is_current(&self, conn: &mut Connection) -> Result<bool, PersistenceError> {
        let meta = self.names.qualified(&self.names.meta);
        // The leases table came later without a version bump, and is not looked for here: a
        // store without it still opens on a hot standby or for a role that may only read;
        // the first lease operation creates it (`leases.rs`).
        let exists: bool = conn
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&meta])
            .map_err(classify)?
            .try_get(0)
            .map_err(|e| corrupt(None, "schema lookup", e))?;
        if !exists {
            return Ok(false);
        }
        let row = conn
            .client
            .query_opt(&format!("SELECT schema_version, ordering FROM {meta}"), &[])
            .map_err(classify)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let version: i32 = row
            .try_get(0)
            .map_err(|e| corrupt(None, "schema version", e))?;
        let ordering: Option<String> = row
            .try_get(1)
            .map_err(|e| corrupt(None, "ordering mode", e))?;
        if version > SCHEMA_VERSION {
            return Err(newer_schema(version));
        }
        Ok(version == SCHEMA_VERSION
            && (self.config.ordering.is_unordered()
                || ordering.as_deref() == Some(self.config.ordering.name())))
    }

    /// Records the ordering mode in a new store; refuses to open a store whose positions were
    /// assigned in another mode (mixing them would break the order).
    fn check_ordering(&self, tx: &mut Transaction<'_>, meta: &str) -> Result<(), PersistenceError> {
        let mode = self.config.ordering;
        if mode.is_unordered() {
            return Ok(());
        }
        let stored: Option<String> = tx
            .query_one(&format!("SELECT ordering FROM {meta}"), &[])
            .map_err(classify)?
            .try_get(0)
            .map_err(|e| corrupt(None, "ordering mode", e))?;
        let events = self.names.qualified(&self.names.events);
        let empty = if stored.is_none() && mode != OrderingMode::TableLock {
            tx.query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {events})"), &[])
                .map_err(classify)?
                .try_get(0)
                .map_err(|e| corrupt(None, "emptiness", e))?
        } else {
            false
        };
        match stored.as_deref() {
            Some(name) if name == mode.name() => Ok(()),
            None if mode == OrderingMode::TableLock || empty => {
                tx.execute(&format!("UPDATE {meta} SET ordering = $1"), &[&mode.name()])
                    .map_err(classify)?;
                Ok(())
            }
            stored => Err(PersistenceError::Config(format!(
                "schema `{}` holds positions assigned with the `{}` ordering, and this recorder \
                 is configured for `{}`: open it with `ordering={}` (switching table_lock to xid \
                 is possible with every writer stopped: UPDATE {meta} SET ordering = 'xid'; \
                 the other way round is not)",
                self.names.schema,
                stored.unwrap_or("table_lock"),
                mode.name(),
                stored.unwrap_or("table_lock"),
            ))),
        }
    }

    /// The configuration this recorder was opened with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }
}

/// A store written by a newer version of the library: left untouched.
fn newer_schema(found: i32) -> PersistenceError {
    PersistenceError::SchemaVersion {
        backend: error::BACKEND,
        found: i64::from(found),
        supported: i64::from(SCHEMA_VERSION),
    }
}

fn prepare(conn: &mut Conn, sql: &str) -> Result<Statement, PersistenceError> {
    conn.prepared(sql).map(|(_, s)| s).map_err(classify)
}

impl Drop for PostgresRecorder {
    fn drop(&mut self) {
        if self.config.drop_schema_on_drop {
            if let Ok(mut conn) = self.pool.get() {
                // Best effort: a test schema left behind is harmless.
                let _ = conn.client.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.names.schema
                ));
            }
        }
    }
}

impl AggregateRecorder for PostgresRecorder {
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.append_inner(batch, tracking)
    }

    /// Streams the rows (`query_raw`): each is decoded and visited as it arrives, while the
    /// server is still sending the next ones, and none is buffered.
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.load_stream(stream_id, query, visit)
    }
}

impl AdminRecorder for PostgresRecorder {
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

impl ApplicationRecorder for PostgresRecorder {
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

impl ProcessRecorder for PostgresRecorder {
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.load_max_tracking_position(upstream)
    }

    fn leases(&self) -> Option<&dyn crate::persistence::LeaseRecorder> {
        Some(self)
    }
}
