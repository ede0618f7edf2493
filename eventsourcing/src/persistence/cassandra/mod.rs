//! The Cassandra recorder (feature `cassandra`): streams on a distributed engine.
//!
//! Apache Cassandra (and ScyllaDB, which speaks the same protocol) spreads data over many
//! nodes by partition key and offers atomic, linearizable writes only inside one partition,
//! through lightweight transactions (Paxos). The recorder is built on exactly that:
//!
//! - **Events** live in `events`, one partition per stream and *bucket* (about
//!   [`CassandraConfig::bucket_size`] events each, so that a very long stream does not grow one
//!   partition without bound), clustered by version. A static column `head` holds the last
//!   version written to the partition.
//! - **An append** to one stream is one conditional batch inside one partition: every event is
//!   an `UPDATE ... IF head = expected`, all in the bucket of the expected version. It is
//!   atomic (all events or none) and linearizable: of N writers at the same version exactly one
//!   wins, the others get [`PersistenceError::Conflict`]. An append starts a new bucket when its
//!   expected version is at a bucket boundary or beyond; it may then run past the boundary (up
//!   to one bucket's worth of events), which keeps buckets dense: bucket `b + 1` exists only
//!   once bucket `b` reached its end. A lightweight transaction that times out has an unknown
//!   outcome; the recorder resolves it with a Paxos read of the row it wrote.
//! - **One event by its id** uses a storage-attached index on `event_id`, written with the
//!   partition itself (atomic with the append) and queried on every node.
//! - **Snapshots** live in `snapshots`, newest first per stream.
//!
//! What it cannot do that the SQL stores do, and what it does instead:
//!
//! - **A save across several streams** cannot be atomic with version checks (a conditional
//!   batch cannot span partitions): such an append is refused with
//!   [`PersistenceError::Unsupported`] and nothing is written.
//! - **The global log** (positions, notifications, tracking records) needs an order across
//!   partitions that Cassandra does not have. The log methods of
//!   [`ApplicationRecorder`] and [`ProcessRecorder`] return [`PersistenceError::Unsupported`],
//!   so followers, projections and process applications fail at their first read with a typed
//!   error: run them on a SQL store. `append` returns no positions.
//!
//! `docs/CASSANDRA.md` has the data model, the guarantees and the figures. The schema is
//! `schema.cql` next to this file.
//!
//! Tests and benchmarks read `EVENTSOURCING_TEST_CASSANDRA_URL`
//! (`cassandra://127.0.0.1:9042/KEYSPACE`); `scripts/services.sh start cassandra` starts a
//! server on loopback.

mod config;
mod error;
mod rows;
mod schema;

use crate::persistence::Conflict;
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::ControlFlow;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::PagingState;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlValue, MaybeUnset, Row};
use uuid::Uuid;

pub use config::{CassandraConfig, Replication};
pub use schema::SCHEMA_VERSION;

use self::error::{classify, from_rows, outcome, signed, unsigned, Outcome, BACKEND};
use self::rows::{event_ref, snapshot, EventRow, SnapshotRow};
use self::schema::Statements;
use super::recorder::{validate_append, validate_text};
use super::{
    AdminRecorder, AggregateRecorder, ApplicationRecorder, EventQuery, NotificationQuery,
    PersistenceError, ProcessRecorder, SnapshotRecorder, StoredEvent, StoredEventRef,
    StoredSnapshot, StreamAppend, Tracking,
};

/// An event store on Apache Cassandra or ScyllaDB. See the [module documentation](self).
///
/// The driver is asynchronous; the recorder runs it on a small runtime of its own and blocks
/// the calling thread, like the other recorders, so it needs no async runtime from the caller.
pub struct CassandraRecorder {
    session: Session,
    statements: Statements,
    bucket_size: u64,
    config: CassandraConfig,
    // Dropped last: the session's connections run on it.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for CassandraRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraRecorder")
            .field("nodes", &self.config.nodes)
            .field("keyspace", &self.config.keyspace)
            .field("bucket_size", &self.bucket_size)
            .finish_non_exhaustive()
    }
}

/// The condition of one append: the head the partition must have (`None`: the partition is
/// new).
type Head = Option<i64>;

impl CassandraRecorder {
    /// Connects, creates the keyspace and tables if needed, and checks the schema version.
    ///
    /// # Errors
    /// [`PersistenceError::Config`] for a bad configuration, [`PersistenceError::Unavailable`]
    /// when no node answers, [`PersistenceError::SchemaVersion`] for a newer schema.
    pub fn open(config: CassandraConfig) -> Result<Self, PersistenceError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("eventsourcing-cassandra")
            .enable_all()
            .build()
            .map_err(|e| PersistenceError::Backend {
                backend: BACKEND,
                source: Box::new(e),
            })?;
        let (session, statements, bucket_size) = block_on(&runtime, async {
            let session = SessionBuilder::new()
                .known_nodes(&config.nodes)
                .connection_timeout(config.request_timeout)
                .build()
                .await
                .map_err(error::from_session)?;
            let (statements, bucket_size) = schema::open(&session, &config).await?;
            Ok::<_, PersistenceError>((session, statements, bucket_size))
        })?;
        Ok(Self {
            session,
            statements,
            bucket_size,
            config,
            runtime,
        })
    }

    /// Opens `cassandra://HOST:PORT/KEYSPACE[?options]` (see [`CassandraConfig::from_url`]).
    ///
    /// # Errors
    /// As [`CassandraConfig::from_url`] and [`CassandraRecorder::open`].
    pub fn open_url(url: &str) -> Result<Self, PersistenceError> {
        Self::open(CassandraConfig::from_url(url)?)
    }

    /// The events per bucket in force for this keyspace.
    #[must_use]
    pub fn bucket_size(&self) -> u64 {
        self.bucket_size
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        block_on(&self.runtime, future)
    }

    /// The bucket an append expecting `expected_version` writes to.
    fn bucket_of_append(&self, expected_version: u64) -> u64 {
        expected_version / self.bucket_size
    }

    /// The lowest bucket that can hold `version`: the bucket of the append that wrote it,
    /// whose expected version is at most one bucket's worth of events below.
    fn lowest_bucket_of(&self, version: u64) -> u64 {
        (version.saturating_sub(1) / self.bucket_size).saturating_sub(1)
    }

    /// Whether a bucket whose head is `head` may be followed by another: only once the stream
    /// reached the next bucket's range.
    fn may_continue(&self, bucket: u64, head: u64) -> bool {
        head >= (bucket + 1).saturating_mul(self.bucket_size)
    }

    async fn head(
        &self,
        stream_id: &str,
        bucket: i64,
        serial: bool,
    ) -> Result<Head, PersistenceError> {
        let statement = if serial {
            &self.statements.head_serial
        } else {
            &self.statements.head
        };
        let result = self
            .session
            .execute_unpaged(statement, (stream_id, bucket))
            .await
            .map_err(classify)?
            .into_rows_result()
            .map_err(from_rows)?;
        Ok(result
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(from_rows)?
            .and_then(|(head,)| head))
    }

    /// The stream's version and its last bucket, probing bucket heads from `start` up.
    async fn last_bucket(
        &self,
        stream_id: &str,
        start: u64,
        serial: bool,
    ) -> Result<Option<(u64, u64)>, PersistenceError> {
        let mut found = None;
        let mut bucket = start;
        while let Some(head) = self
            .head(stream_id, signed(bucket, "bucket")?, serial)
            .await?
        {
            let head = unsigned(head, "head", stream_id)?;
            found = Some((bucket, head));
            if !self.may_continue(bucket, head) {
                break;
            }
            bucket += 1;
        }
        Ok(found)
    }

    /// The stream's current version, through Paxos.
    async fn current_version(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        Ok(self
            .last_bucket(stream_id, 0, true)
            .await?
            .map_or(0, |(_, head)| head))
    }

    async fn append_one(&self, append: &StreamAppend) -> Result<(), PersistenceError> {
        let stream_id = append.stream_id.as_str();
        let expected = append.expected_version;
        if append.events.is_empty() {
            // Asserts the version without writing.
            let actual = self.current_version(stream_id).await?;
            return if actual == expected {
                Ok(())
            } else {
                Err(conflict(stream_id, expected, actual))
            };
        }
        let count = u64::try_from(append.events.len()).unwrap_or(u64::MAX);
        if count > self.bucket_size {
            return Err(PersistenceError::InvalidBatch {
                stream_id: stream_id.to_owned(),
                reason: format!(
                    "{count} events in one append: Cassandra appends at most the bucket size ({}) at once",
                    self.bucket_size
                ),
            });
        }
        let bucket = self.bucket_of_append(expected);
        let expected_head = signed(expected, "expected version")?;
        let starts_bucket = expected == bucket * self.bucket_size;
        // The usual case: the bucket exists and its head is the expected version.
        if expected > 0 && !starts_bucket {
            match self
                .conditional_append(append, bucket, Some(expected_head))
                .await?
            {
                None => return Ok(()),
                Some(Some(head)) => {
                    return Err(conflict(
                        stream_id,
                        expected,
                        unsigned(head, "head", stream_id)?,
                    ))
                }
                // The bucket does not exist yet: an earlier append ran past the boundary.
                Some(None) => {}
            }
        }
        // A new bucket: the stream must be at `expected` in the previous bucket (or be new).
        if bucket > 0 {
            let previous = self
                .head(stream_id, signed(bucket - 1, "bucket")?, true)
                .await?;
            let previous = match previous {
                Some(head) => unsigned(head, "head", stream_id)?,
                // The stream is shorter still: report where it is.
                None => self.current_version(stream_id).await?,
            };
            if previous != expected {
                return Err(conflict(stream_id, expected, previous));
            }
        } else if expected > 0 {
            return Err(conflict(stream_id, expected, 0));
        }
        match self.conditional_append(append, bucket, None).await? {
            None => Ok(()),
            Some(head) => Err(conflict(
                stream_id,
                expected,
                head.map_or(Ok(0), |h| unsigned(h, "head", stream_id))?,
            )),
        }
    }

    /// One conditional batch writing every event of `append` into `bucket` if its head is
    /// `condition`. `None` when applied; otherwise the head found.
    async fn conditional_append(
        &self,
        append: &StreamAppend,
        bucket: u64,
        condition: Head,
    ) -> Result<Option<Head>, PersistenceError> {
        let stream_id = append.stream_id.as_str();
        let bucket_value = signed(bucket, "bucket")?;
        let last = append.events.last().map_or(0, |e| e.version);
        let last = signed(last, "version")?;
        let mut batch = Batch::new(BatchType::Logged);
        batch.set_serial_consistency(Some(scylla::statement::SerialConsistency::Serial));
        batch.set_consistency(scylla::statement::Consistency::Quorum);
        let mut values = Vec::with_capacity(append.events.len());
        for event in &append.events {
            batch.append_statement(self.statements.append_event.clone());
            let m = &event.metadata;
            values.push((
                last,
                m.event_id,
                event.topic.as_str(),
                i32::try_from(event.schema_version).map_err(|_| {
                    PersistenceError::InvalidBatch {
                        stream_id: stream_id.to_owned(),
                        reason: format!("schema version {} is too large", event.schema_version),
                    }
                })?,
                event.payload.as_slice(),
                m.timestamp.as_micros(),
                // Unset, not null: a null would write a tombstone per event.
                m.causation_id.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                m.correlation_id.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                if m.user.is_empty() {
                    MaybeUnset::Unset
                } else {
                    MaybeUnset::Set(&m.user)
                },
                stream_id,
                bucket_value,
                signed(event.version, "version")?,
                condition,
            ));
        }
        match self.session.batch(&batch, values).await {
            Ok(result) => {
                let rows = result.into_rows_result().map_err(from_rows)?;
                let (applied, head) = lwt_outcome(&rows)?;
                Ok((!applied).then_some(head))
            }
            Err(error) => match outcome(error) {
                Outcome::NotApplied(error) => Err(error),
                Outcome::Unknown(error) => self.resolve_unknown(append, bucket, error).await,
            },
        }
    }

    /// After a timed-out lightweight transaction: a Paxos read of the first row the append
    /// wrote tells whether it was applied (finishing any half-done round first).
    async fn resolve_unknown(
        &self,
        append: &StreamAppend,
        bucket: u64,
        error: PersistenceError,
    ) -> Result<Option<Head>, PersistenceError> {
        let Some(first) = append.events.first() else {
            return Err(error);
        };
        let stream_id = append.stream_id.as_str();
        let Ok(rows) = self
            .session
            .execute_unpaged(
                &self.statements.event_at_serial,
                (
                    stream_id,
                    signed(bucket, "bucket")?,
                    signed(first.version, "version")?,
                ),
            )
            .await
        else {
            return Err(error);
        };
        let rows = rows.into_rows_result().map_err(from_rows)?;
        match rows.maybe_first_row::<EventRow<'_>>().map_err(from_rows)? {
            Some(row) => match event_ref(stream_id, row)? {
                Some(stored) if stored.metadata.event_id == first.metadata.event_id => Ok(None),
                _ => Ok(Some(Some(signed(first.version, "version")?))),
            },
            None => Err(error),
        }
    }

    /// Visits the events of one stream that `query` selects.
    async fn visit(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let from = query.from_version.unwrap_or(1).max(1);
        let to = query.to_version.unwrap_or(u64::MAX >> 1).min(u64::MAX >> 1);
        let mut remaining = query.limit.unwrap_or(usize::MAX);
        if from > to || remaining == 0 {
            return Ok(());
        }
        let lowest = self.lowest_bucket_of(from);
        // Buckets in the query's order.
        let buckets: Vec<u64> = if query.descending {
            let Some((last, _)) = self.last_bucket(stream_id, lowest, false).await? else {
                return Ok(());
            };
            let last = last.min(to.saturating_sub(1) / self.bucket_size);
            (lowest..=last).rev().collect()
        } else {
            Vec::new()
        };
        let mut ascending = lowest;
        let mut index = 0;
        loop {
            let bucket = if query.descending {
                match buckets.get(index) {
                    Some(b) => *b,
                    None => return Ok(()),
                }
            } else {
                ascending
            };
            index += 1;
            let statement = if query.descending {
                &self.statements.select_desc
            } else {
                &self.statements.select_asc
            };
            let limit = i32::try_from(remaining).unwrap_or(i32::MAX);
            let values = (
                stream_id,
                signed(bucket, "bucket")?,
                signed(from, "version")?,
                signed(to, "version")?,
                limit,
            );
            let mut paging = PagingState::start();
            let mut head = None;
            loop {
                let (result, next) = self
                    .session
                    .execute_single_page(statement, values, paging)
                    .await
                    .map_err(classify)?;
                let rows = result.into_rows_result().map_err(from_rows)?;
                for row in rows.rows::<EventRow<'_>>().map_err(from_rows)? {
                    let row = row.map_err(from_rows)?;
                    if head.is_none() {
                        head = row.1;
                    }
                    if let Some(event) = event_ref(stream_id, row)? {
                        if visit(event).is_break() {
                            return Ok(());
                        }
                        remaining -= 1;
                        if remaining == 0 {
                            return Ok(());
                        }
                    }
                }
                match next {
                    scylla::response::PagingStateResponse::HasMorePages { state } => {
                        paging = state;
                    }
                    scylla::response::PagingStateResponse::NoMorePages => break,
                }
            }
            if query.descending {
                continue;
            }
            // Ascending: go on while the stream may continue in the next bucket.
            let head = match head {
                Some(head) => Some(head),
                None => {
                    self.head(stream_id, signed(bucket, "bucket")?, false)
                        .await?
                }
            };
            let Some(head) = head else {
                return Ok(());
            };
            let head = unsigned(head, "head", stream_id)?;
            if !self.may_continue(bucket, head) || (bucket + 1) * self.bucket_size >= to {
                return Ok(());
            }
            ascending += 1;
        }
    }

    /// The event at one version of a stream, looked for in the two buckets that can hold it.
    async fn event_at(
        &self,
        stream_id: &str,
        version: u64,
    ) -> Result<Option<(u64, StoredEvent)>, PersistenceError> {
        let lowest = self.lowest_bucket_of(version);
        let highest = version.saturating_sub(1) / self.bucket_size;
        for bucket in (lowest..=highest).rev() {
            let rows = self
                .session
                .execute_unpaged(
                    &self.statements.event_at,
                    (
                        stream_id,
                        signed(bucket, "bucket")?,
                        signed(version, "version")?,
                    ),
                )
                .await
                .map_err(classify)?
                .into_rows_result()
                .map_err(from_rows)?;
            if let Some(row) = rows.maybe_first_row::<EventRow<'_>>().map_err(from_rows)? {
                if let Some(event) = event_ref(stream_id, row)? {
                    return Ok(Some((bucket, event.into_owned())));
                }
            }
        }
        Ok(None)
    }

    async fn count(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<u64, PersistenceError> {
        let (count,) = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(classify)?
            .into_rows_result()
            .map_err(from_rows)?
            .single_row::<(i64,)>()
            .map_err(from_rows)?;
        unsigned(count, "count", "")
    }
}

impl Drop for CassandraRecorder {
    fn drop(&mut self) {
        if self.config.drop_keyspace_on_drop {
            let ks = &self.config.keyspace;
            // Best effort: a test keyspace left behind costs only disk.
            let _ = self.run(
                self.session
                    .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()),
            );
        }
    }
}

/// Runs `future` to completion on the calling thread, with `runtime`'s reactor and timers.
/// Unlike `Runtime::block_on` it does not panic inside another runtime's context (an async
/// caller's `spawn_blocking`, say).
fn block_on<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    let _context = runtime.enter();
    futures_executor::block_on(future)
}

fn conflict(stream_id: &str, expected: u64, actual: u64) -> PersistenceError {
    PersistenceError::Conflict(Conflict {
        stream_id: stream_id.to_owned(),
        expected,
        actual,
    })
}

fn unsupported(operation: &'static str) -> PersistenceError {
    PersistenceError::Unsupported {
        backend: BACKEND,
        operation,
        reason: "Cassandra orders events only within one partition: there is no gap-free \
                 global log, no atomic write across streams and no tracking record. Run \
                 followers, projections and process applications on a SQL store.",
    }
}

/// Whether a lightweight transaction was applied, and the `head` it found when it was not.
fn lwt_outcome(
    rows: &scylla::response::query_result::QueryRowsResult,
) -> Result<(bool, Head), PersistenceError> {
    let specs = rows.column_specs();
    let column = |name: &str| specs.iter().position(|c| c.name() == name);
    let applied_at = column("[applied]").ok_or_else(|| PersistenceError::Corrupt {
        detail: "a Cassandra conditional write answered without `[applied]`".into(),
    })?;
    let head_at = column("head");
    let Some(row) = rows.maybe_first_row::<Row>().map_err(from_rows)? else {
        return Err(PersistenceError::Corrupt {
            detail: "a Cassandra conditional write answered with no row".into(),
        });
    };
    let applied = matches!(
        row.columns.get(applied_at),
        Some(Some(CqlValue::Boolean(true)))
    );
    let head = match head_at.and_then(|i| row.columns.get(i)) {
        Some(Some(CqlValue::BigInt(head))) => Some(*head),
        _ => None,
    };
    Ok((applied, head))
}

impl AggregateRecorder for CassandraRecorder {
    /// A tracking record is [`PersistenceError::Unsupported`] (after checking the input): it
    /// cannot commit atomically with events in another partition.
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        validate_append(batch, tracking)?;
        if tracking.is_some() {
            return Err(unsupported("tracking records"));
        }
        match batch {
            [] => Ok(Vec::new()),
            [append] => self.run(self.append_one(append)).map(|()| Vec::new()),
            _ => Err(PersistenceError::Unsupported {
                backend: BACKEND,
                operation: "an atomic append to several streams",
                reason: "a Cassandra lightweight transaction covers one partition: save one \
                         aggregate at a time, or use a SQL store for atomic multi-aggregate saves",
            }),
        }
    }

    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.run(self.visit(stream_id, query, visit))
    }
}

impl AdminRecorder for CassandraRecorder {
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.run(async {
            // The index gives the row's key; the row itself is read as every other read is.
            let rows = self
                .session
                .execute_unpaged(&self.statements.event_by_id, (event_id,))
                .await
                .map_err(classify)?
                .into_rows_result()
                .map_err(from_rows)?;
            let Some((stream_id, bucket, version)) = rows
                .maybe_first_row::<(String, i64, i64)>()
                .map_err(from_rows)?
            else {
                return Ok(None);
            };
            let rows = self
                .session
                .execute_unpaged(
                    &self.statements.event_at,
                    (stream_id.as_str(), bucket, version),
                )
                .await
                .map_err(classify)?
                .into_rows_result()
                .map_err(from_rows)?;
            let Some(row) = rows.maybe_first_row::<EventRow<'_>>().map_err(from_rows)? else {
                return Ok(None);
            };
            // A stream deleted and written again between the two reads: not this event.
            Ok(event_ref(&stream_id, row)?
                .filter(|e| e.metadata.event_id == event_id)
                .map(StoredEventRef::into_owned))
        })
    }

    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.run(async {
            // Snapshots first: a crash half-way must not leave a snapshot without its events.
            self.delete_snapshots_async(stream_id).await?;
            let Some((last, _)) = self.last_bucket(stream_id, 0, true).await? else {
                return Ok(0);
            };
            // Newest bucket first: a crash half-way leaves a shorter, valid stream.
            let mut deleted = 0;
            for bucket in (0..=last).rev() {
                let bucket = signed(bucket, "bucket")?;
                deleted += self
                    .count(&self.statements.count_bucket, (stream_id, bucket))
                    .await?;
                self.session
                    .execute_unpaged(&self.statements.delete_bucket, (stream_id, bucket))
                    .await
                    .map_err(classify)?;
            }
            Ok(deleted)
        })
    }

    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        validate_text(events)?;
        self.run(async {
            // Every event must exist, as the one that was read, before anything changes.
            let mut located = Vec::with_capacity(events.len());
            for event in events {
                let found = self.event_at(&event.stream_id, event.version).await?;
                let Some((bucket, _)) =
                    found.filter(|(_, stored)| stored.metadata.event_id == event.metadata.event_id)
                else {
                    return Err(PersistenceError::EventNotFound {
                        stream_id: event.stream_id.clone(),
                        version: event.version,
                    });
                };
                located.push((bucket, event));
            }
            // One conditional batch per partition, compare and swap on the event id: a stream
            // deleted meanwhile stays deleted, and an event written again is not overwritten.
            let mut partitions: BTreeMap<(&str, u64), Vec<&StoredEvent>> = BTreeMap::new();
            for (bucket, event) in located {
                partitions
                    .entry((event.stream_id.as_str(), bucket))
                    .or_default()
                    .push(event);
            }
            for ((stream_id, bucket), events) in partitions {
                let mut batch = Batch::new(BatchType::Logged);
                let mut values = Vec::with_capacity(events.len());
                for event in &events {
                    batch.append_statement(self.statements.update_event.clone());
                    let m = &event.metadata;
                    values.push((
                        event.topic.as_str(),
                        i32::try_from(event.schema_version).unwrap_or(i32::MAX),
                        event.payload.as_slice(),
                        m.timestamp.as_micros(),
                        m.causation_id,
                        m.correlation_id,
                        (!m.user.is_empty()).then_some(&m.user),
                        stream_id,
                        signed(bucket, "bucket")?,
                        signed(event.version, "version")?,
                        m.event_id,
                    ));
                }
                let rows = self
                    .session
                    .batch(&batch, values)
                    .await
                    .map_err(classify)?
                    .into_rows_result()
                    .map_err(from_rows)?;
                if !lwt_outcome(&rows)?.0 {
                    let first = events.first().map_or(0, |e| e.version);
                    return Err(PersistenceError::EventNotFound {
                        stream_id: stream_id.to_owned(),
                        version: first,
                    });
                }
            }
            Ok(())
        })
    }
}

impl CassandraRecorder {
    async fn delete_snapshots_async(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        let count = self
            .count(&self.statements.count_snapshots, (stream_id,))
            .await?;
        if count > 0 {
            self.session
                .execute_unpaged(&self.statements.delete_snapshots, (stream_id,))
                .await
                .map_err(classify)?;
        }
        Ok(count)
    }
}

impl ApplicationRecorder for CassandraRecorder {
    /// Always [`PersistenceError::Unsupported`]: Cassandra has no global order.
    fn select_notifications_into(
        &self,
        _query: &NotificationQuery,
        _into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        Err(unsupported("the notification log"))
    }

    /// Always [`PersistenceError::Unsupported`]: Cassandra has no global order.
    fn max_position(&self) -> Result<u64, PersistenceError> {
        Err(unsupported("the notification log's maximum position"))
    }
}

impl ProcessRecorder for CassandraRecorder {
    /// Always [`PersistenceError::Unsupported`].
    fn max_tracking_position(&self, _upstream: &str) -> Result<Option<u64>, PersistenceError> {
        Err(unsupported("tracking records"))
    }
}

impl SnapshotRecorder for CassandraRecorder {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        let schema_version =
            i32::try_from(snapshot.schema_version).map_err(|_| PersistenceError::InvalidBatch {
                stream_id: snapshot.stream_id.clone(),
                reason: format!(
                    "snapshot schema version {} is too large",
                    snapshot.schema_version
                ),
            })?;
        self.run(async {
            self.session
                .execute_unpaged(
                    &self.statements.put_snapshot,
                    (
                        snapshot.stream_id.as_str(),
                        signed(snapshot.version, "snapshot version")?,
                        snapshot.topic.as_str(),
                        schema_version,
                        snapshot.state.as_slice(),
                        snapshot.created_on.as_micros(),
                        snapshot.modified_on.as_micros(),
                    ),
                )
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let at_most = at_most_version.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
        self.run(async {
            let rows = self
                .session
                .execute_unpaged(&self.statements.latest_snapshot, (stream_id, at_most))
                .await
                .map_err(classify)?
                .into_rows_result()
                .map_err(from_rows)?;
            rows.maybe_first_row::<SnapshotRow>()
                .map_err(from_rows)?
                .map(snapshot)
                .transpose()
        })
    }

    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.run(self.delete_snapshots_async(stream_id))
    }
}
