//! Writing events: the version check and the insert in one statement (one round trip in
//! autocommit for a single chunk without tracking, else a transaction), tracked appends, the
//! conflict a racing writer causes, and the rewrites of stored events (update in place,
//! delete a stream).

use crate::persistence::Conflict;
use std::sync::atomic::Ordering;

use postgres::types::ToSql;
use postgres::{GenericClient, Statement, Transaction};
use uuid::Uuid;

use super::config::OrderingMode;
use super::error::{classify, is_unique_violation};
use super::pool::Conn;
use super::rows::{corrupt, extras_json, to_bigint, to_int};
use super::{prepare, Connection, PostgresRecorder, MAX_EVENTS_PER_XID_APPEND};
use crate::persistence::recorder::{validate_append, validate_text};
use crate::persistence::{PersistenceError, StoredEvent, StreamAppend, Tracking};

/// Rows per INSERT statement. Rows go as one array per column (`UNNEST`), so a statement has
/// eight bind parameters whatever its size; chunking only bounds the message size.
pub(super) const CHUNK_ROWS: usize = 1000;

/// The events of a batch as one array per column, in batch order, and the expected versions
/// the insert statement checks first (only in the first chunk: later chunks check nothing).
#[derive(Debug, Default)]
struct Columns<'a> {
    check_streams: Vec<&'a str>,
    check_expected: Vec<i64>,
    stream_ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    topics: Vec<&'a str>,
    schema_versions: Vec<i32>,
    timestamps: Vec<i64>,
    payloads: Vec<&'a [u8]>,
    metadata: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn encode(events: &[&'a StoredEvent]) -> Result<Self, PersistenceError> {
        let mut c = Self::default();
        for event in events {
            c.stream_ids.push(&event.stream_id);
            c.versions.push(to_bigint(event.version, "event version")?);
            c.event_ids.push(event.metadata.event_id);
            c.topics.push(&event.topic);
            c.schema_versions
                .push(to_int(event.schema_version, "event schema version")?);
            c.timestamps.push(event.metadata.timestamp.as_micros());
            c.payloads.push(&event.payload);
            c.metadata
                .push(extras_json(&event.metadata, &event.stream_id)?);
        }
        Ok(c)
    }

    /// Sets the streams and versions the statement checks before inserting.
    fn check(&mut self, batch: &'a [StreamAppend]) -> Result<(), PersistenceError> {
        for append in batch {
            self.check_streams.push(&append.stream_id);
            self.check_expected
                .push(to_bigint(append.expected_version, "expected version")?);
        }
        Ok(())
    }

    fn params<'s>(&'s self, offset: &'s i64, xid: bool) -> Vec<&'s (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.check_streams,
            &self.check_expected,
            &self.stream_ids,
            &self.versions,
            &self.event_ids,
            &self.topics,
            &self.schema_versions,
            &self.timestamps,
            &self.payloads,
            &self.metadata,
        ];
        if xid {
            params.push(offset);
        }
        params
    }
}

/// Why an append transaction failed.
enum AppendFailure {
    /// A typed error to return as is.
    Error(PersistenceError),
    /// A racing writer took a (stream, version): report the conflict after rollback.
    StreamRace,
    /// The store's positions are ahead of this cluster's transaction ids (it became a copy of
    /// another cluster's since the open): nothing was inserted; repair the offset and retry.
    Ahead,
}

impl From<PersistenceError> for AppendFailure {
    fn from(error: PersistenceError) -> Self {
        Self::Error(error)
    }
}

impl PostgresRecorder {
    pub(super) fn append_inner(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.append_once(batch, tracking, true)
    }

    /// One try of [`PostgresRecorder::append_inner`]; when the store is found ahead of the
    /// cluster, repairs the position offset and (if `retry`) tries once more.
    fn append_once(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
        retry: bool,
    ) -> Result<Vec<u64>, PersistenceError> {
        validate_append(batch, tracking)?;
        let events: Vec<&StoredEvent> = batch.iter().flat_map(|a| &a.events).collect();
        let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
        if self.config.ordering.uses_xid() && count > MAX_EVENTS_PER_XID_APPEND {
            return Err(PersistenceError::LimitExceeded {
                what: "events in one append (transaction-id ordering)",
                limit: MAX_EVENTS_PER_XID_APPEND,
                actual: count,
            });
        }
        let mut chunks = events
            .chunks(CHUNK_ROWS)
            .map(Columns::encode)
            .collect::<Result<Vec<_>, _>>()?;
        if !batch.is_empty() {
            // A batch asserting versions without new events still runs the statement once.
            if chunks.is_empty() {
                chunks.push(Columns::default());
            }
            if !self.config.skip_version_check {
                if let Some(first) = chunks.first_mut() {
                    first.check(batch)?;
                }
            }
        }
        let tracked = tracking
            .map(|t| to_bigint(t.position, "tracking position").map(|p| (t, p)))
            .transpose()?;
        if batch.is_empty() && tracked.is_none() {
            return Ok(Vec::new());
        }

        let mut conn = self.conn()?;
        let autocommit = self.config.ordering != OrderingMode::TableLock
            && self.config.hold_in_transaction.is_none();
        if let ([append], [chunk], None, true) = (batch, chunks.as_slice(), tracked, autocommit) {
            if !append.events.is_empty() {
                let outcome = self.append_stream(&mut conn, append, chunk);
                return self.finish(conn, batch, tracking, retry, outcome);
            }
        }
        let insert = prepare(&mut conn, &self.sql.insert)?;
        let outcome = match (chunks.as_slice(), tracked) {
            // One statement is a transaction of its own in autocommit: the append is one
            // round trip, without BEGIN and COMMIT.
            ([chunk], None) if autocommit => {
                let mut positions = Vec::with_capacity(events.len());
                self.insert_chunk(&mut conn.client, &insert, chunk, 0, &mut positions)
                    .map(|()| positions)
            }
            _ => {
                let track = match tracked {
                    Some(_) => Some(prepare(&mut conn, &self.sql.track)?),
                    None => None,
                };
                match conn.client.transaction() {
                    Ok(tx) => {
                        self.append_in(tx, &insert, track.as_ref(), &events, &chunks, tracked)
                    }
                    Err(e) => Err(AppendFailure::Error(classify(e))),
                }
            }
        };
        self.finish(conn, batch, tracking, retry, outcome)
    }

    /// Reports an append's outcome: announces a commit, or maps the failure to its error
    /// (after repairing the position offset and retrying once, if `retry`, when the store
    /// was found ahead of the cluster).
    fn finish(
        &self,
        mut conn: Connection,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
        retry: bool,
        outcome: Result<Vec<u64>, AppendFailure>,
    ) -> Result<Vec<u64>, PersistenceError> {
        match outcome {
            Ok(positions) => {
                if let Some(last) = positions.iter().max() {
                    self.last_appended.fetch_max(*last, Ordering::Relaxed);
                    self.announce_commit();
                }
                Ok(positions)
            }
            Err(AppendFailure::Error(e)) => Err(e),
            Err(AppendFailure::StreamRace) => Err(self.race_conflict(&mut conn, batch)),
            Err(AppendFailure::Ahead) => {
                self.keep_positions_increasing(&mut conn)?;
                drop(conn);
                if retry {
                    self.append_once(batch, tracking, false)
                } else {
                    Err(PersistenceError::Config(format!(
                        "schema `{}` holds positions above what this PostgreSQL cluster's \
                         transaction ids give, and raising its position offset did not help",
                        self.names.schema
                    )))
                }
            }
        }
    }

    /// The append of one stream without tracking in one autocommit statement
    /// ([`Sql::append_event`](super::sql::Sql) for one event, `append_stream` for more): no
    /// row back means the stream is not at its expected version or the store is ahead of
    /// the cluster, and two reads tell which (only on that path).
    fn append_stream(
        &self,
        conn: &mut Conn,
        append: &StreamAppend,
        chunk: &Columns<'_>,
    ) -> Result<Vec<u64>, AppendFailure> {
        let expected = if self.config.skip_version_check {
            0
        } else {
            to_bigint(append.expected_version, "expected version")?
        };
        let stream: &str = &append.stream_id;
        let rows = match (append.events.as_slice(), chunk) {
            ([_], c) => {
                let statement = prepare(conn, &self.sql.append_event)?;
                conn.client.query(
                    &statement,
                    &[
                        &stream,
                        &c.versions[0],
                        &c.event_ids[0],
                        &c.topics[0],
                        &c.schema_versions[0],
                        &c.timestamps[0],
                        &c.payloads[0],
                        &c.metadata[0],
                        &expected,
                    ],
                )
            }
            (_, c) => {
                let statement = prepare(conn, &self.sql.append_stream)?;
                conn.client.query(
                    &statement,
                    &[
                        &stream,
                        &c.versions,
                        &c.event_ids,
                        &c.topics,
                        &c.schema_versions,
                        &c.timestamps,
                        &c.payloads,
                        &c.metadata,
                        &expected,
                    ],
                )
            }
        }
        .map_err(|e| self.insert_error(e))?;
        let mut positions = rows
            .iter()
            .map(|row| {
                let position: i64 = row.try_get(0).map_err(|e| corrupt(None, "position", e))?;
                u64::try_from(position).map_err(|e| corrupt(Some(position), "position", e))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        if positions.is_empty() {
            return Err(self.why_not_appended(conn, append));
        }
        if positions.len() != append.events.len() {
            return Err(corrupt(
                None,
                "rows returned by the insert",
                format!("{} for {} events", positions.len(), append.events.len()),
            )
            .into());
        }
        positions.sort_unstable();
        Ok(positions)
    }

    /// Why the one-stream append inserted nothing: the store is ahead of the cluster, or the
    /// stream is not at its expected version (a conflict naming the actual one). The reads
    /// run in snapshots later than the insert's, so "neither" can come back (another
    /// instance repaired the offset meanwhile, or the cluster's transaction ids moved past the
    /// stored positions): that is the ahead case too, and the caller repairs (a no-op then) and
    /// retries once, rather than report a conflict the stream does not have.
    fn why_not_appended(&self, conn: &mut Conn, append: &StreamAppend) -> AppendFailure {
        if self.config.ordering.uses_xid() {
            let ahead = conn
                .prepared_one(&self.sql.ahead, &[])
                .map_err(classify)
                .and_then(|row| {
                    row.try_get::<_, bool>(0)
                        .map_err(|e| corrupt(None, "position check", e))
                });
            match ahead {
                Ok(true) => return AppendFailure::Ahead,
                Ok(false) => {}
                Err(e) => return e.into(),
            }
        }
        if self.config.skip_version_check {
            // No version guard ran: only the ahead probe can have refused the insert.
            return AppendFailure::Ahead;
        }
        let current = self.current_versions(conn, std::slice::from_ref(append));
        match current.map(|c| c.first().copied().unwrap_or(0)) {
            Ok(actual) if actual != append.expected_version => {
                AppendFailure::Error(PersistenceError::Conflict(Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected_version,
                    actual,
                }))
            }
            Ok(_) => AppendFailure::Ahead,
            Err(e) => e.into(),
        }
    }

    /// The error of a failed insert: a racing writer, an event id stored already, or another.
    fn insert_error(&self, e: postgres::Error) -> AppendFailure {
        if is_unique_violation(&e, &self.names.stream_version_key) {
            AppendFailure::StreamRace
        } else if is_unique_violation(&e, &self.names.event_id_key) {
            AppendFailure::Error(PersistenceError::InvalidBatch {
                stream_id: String::new(),
                reason: "an event id in the batch is already stored".into(),
            })
        } else {
            AppendFailure::Error(classify(e))
        }
    }

    /// Runs the insert statement for one chunk, appending the positions of its events to
    /// `positions` in batch order; a stream not at its expected version (the first of the
    /// batch) is a conflict, and then the statement inserted nothing.
    ///
    /// Positions are assigned in batch order (the rows are inserted `ORDER BY` their
    /// ordinal, and so take positions in that order in either mode), so the returned positions
    /// sorted are the events' positions in batch order: no look-up by event id. The
    /// conformance suite checks the positions returned against the positions stored.
    fn insert_chunk(
        &self,
        client: &mut impl GenericClient,
        insert: &Statement,
        chunk: &Columns<'_>,
        index: usize,
        positions: &mut Vec<u64>,
    ) -> Result<(), AppendFailure> {
        let offset = i64::try_from(index * CHUNK_ROWS).unwrap_or(i64::MAX);
        let params = chunk.params(&offset, self.config.ordering.uses_xid());
        let rows = client
            .query(insert, &params)
            .map_err(|e| self.insert_error(e))?;
        let mut conflict: Option<(i64, PersistenceError)> = None;
        let start = positions.len();
        for row in &rows {
            let position: Option<i64> = row.try_get(0).map_err(|e| corrupt(None, "position", e))?;
            if let Some(position) = position {
                let position =
                    u64::try_from(position).map_err(|e| corrupt(Some(position), "position", e))?;
                positions.push(position);
                continue;
            }
            let bad = |what: &str, e: &dyn std::fmt::Display| corrupt(None, what, e);
            let stream_id: Option<String> = row.try_get(1).map_err(|e| bad("stream id", &e))?;
            // The row of NULLs: the store is ahead of this cluster, nothing was inserted.
            let Some(stream_id) = stream_id else {
                return Err(AppendFailure::Ahead);
            };
            let version = |i: usize, what: &str| -> Result<u64, PersistenceError> {
                let v: i64 = row.try_get(i).map_err(|e| bad(what, &e))?;
                u64::try_from(v).map_err(|e| bad(what, &e))
            };
            let expected = version(2, "expected version")?;
            let actual = version(3, "version")?;
            let n: i64 = row.try_get(4).map_err(|e| bad("ordinal", &e))?;
            if conflict.as_ref().is_none_or(|(first, _)| n < *first) {
                let error = PersistenceError::Conflict(Conflict {
                    stream_id,
                    expected,
                    actual,
                });
                conflict = Some((n, error));
            }
        }
        if let Some((_, error)) = conflict {
            return Err(error.into());
        }
        // Already in order in practice, which makes the sort a single pass.
        positions[start..].sort_unstable();
        if positions.len() - start != chunk.stream_ids.len() {
            return Err(corrupt(
                None,
                "rows returned by the insert",
                format!(
                    "{} for {} events",
                    positions.len() - start,
                    chunk.stream_ids.len()
                ),
            )
            .into());
        }
        Ok(())
    }

    fn append_in(
        &self,
        mut tx: Transaction<'_>,
        insert: &Statement,
        track: Option<&Statement>,
        events: &[&StoredEvent],
        chunks: &[Columns<'_>],
        tracked: Option<(&Tracking, i64)>,
    ) -> Result<Vec<u64>, AppendFailure> {
        // First: a fenced committer learns nothing else about the store, and the lease row
        // stays share-locked until commit, so a takeover waits for this commit to end.
        if let Some(lease) = tracked.and_then(|(t, _)| t.lease.as_ref()) {
            self.check_fence(&mut tx, lease)?;
        }
        // The lock is held until commit and serialises appenders; the version check runs
        // under it, in the first insert statement (a cheap index probe per stream).
        if !events.is_empty() && self.config.ordering == OrderingMode::TableLock {
            tx.batch_execute(&self.sql.lock).map_err(classify)?;
        }
        let mut positions = Vec::with_capacity(events.len());
        for (index, chunk) in chunks.iter().enumerate() {
            self.insert_chunk(&mut tx, insert, chunk, index, &mut positions)?;
        }
        // After the insert, so that a conflict is reported before an already tracked
        // position; either way the transaction rolls back and nothing is written.
        if let (Some((t, position)), Some(track)) = (tracked, track) {
            // One committer per upstream at a time, across processes, fenced or not: the
            // lock is held until commit, and the guarded insert after it (a statement of its
            // own, so a snapshot taken after the lock) reads what the previous holder
            // committed. A fence alone does not serialise: two commits under one lease and
            // epoch can be in flight at once (a retry after a lost connection whose first
            // statement still runs on the server).
            tx.execute(&self.sql.track_lock, &[&t.upstream])
                .map_err(classify)?;
            let from = to_bigint(t.from_position, "tracking position")?;
            let inserted = tx
                .execute(track, &[&t.upstream, &position, &from])
                .map_err(classify)?;
            if inserted == 0 {
                return Err(PersistenceError::AlreadyTracked {
                    upstream: t.upstream.clone(),
                    position: t.position,
                }
                .into());
            }
        }
        if let Some(hold) = self.config.hold_in_transaction {
            std::thread::sleep(hold);
        }
        tx.commit().map_err(classify)?;
        Ok(positions)
    }

    /// The conflict to report after a racing writer made the insert fail: the first stream of
    /// the batch that is not at its expected version any more.
    fn race_conflict(&self, conn: &mut Conn, batch: &[StreamAppend]) -> PersistenceError {
        let current = match self.current_versions(conn, batch) {
            Ok(current) => current,
            Err(e) => return e,
        };
        let moved = batch
            .iter()
            .zip(&current)
            .find(|(append, actual)| **actual != append.expected_version);
        let (append, actual) = moved
            .or_else(|| batch.first().zip(current.first()))
            .map_or((None, 0), |(a, v)| (Some(a), *v));
        PersistenceError::Conflict(Conflict {
            stream_id: append.map(|a| a.stream_id.clone()).unwrap_or_default(),
            expected: append.map_or(0, |a| a.expected_version),
            // The racing writer may have rolled back since: report at least one past expected.
            actual: actual.max(append.map_or(0, |a| a.expected_version + 1)),
        })
    }

    pub(super) fn delete_stream_and_snapshots(
        &self,
        stream_id: &str,
    ) -> Result<u64, PersistenceError> {
        let mut conn = self.conn()?;
        let delete_snapshots = prepare(&mut conn, &self.sql.delete_snapshots)?;
        let delete_events = prepare(&mut conn, &self.sql.delete_events)?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        tx.execute(&delete_snapshots, &[&stream_id])
            .map_err(classify)?;
        let deleted = tx
            .execute(&delete_events, &[&stream_id])
            .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(deleted)
    }

    pub(super) fn update_in_place(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        validate_text(events)?;
        let mut conn = self.conn()?;
        let update = prepare(&mut conn, &self.sql.update)?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        for event in events {
            let version = to_bigint(event.version, "event version")?;
            let schema_version = to_int(event.schema_version, "event schema version")?;
            let metadata = extras_json(&event.metadata, &event.stream_id)?;
            let updated = tx
                .execute(
                    &update,
                    &[
                        &event.stream_id,
                        &version,
                        &event.metadata.event_id,
                        &event.topic,
                        &schema_version,
                        &event.metadata.timestamp.as_micros(),
                        &event.payload,
                        &metadata,
                    ],
                )
                .map_err(classify)?;
            if updated == 0 {
                // Dropping the transaction rolls back the updates made so far.
                return Err(PersistenceError::EventNotFound {
                    stream_id: event.stream_id.clone(),
                    version: event.version,
                });
            }
        }
        tx.commit().map_err(classify)
    }
}

impl PostgresRecorder {
    /// The current version of each stream of `batch` (0 for none), read in one snapshot.
    fn current_versions(
        &self,
        conn: &mut Conn,
        batch: &[StreamAppend],
    ) -> Result<Vec<u64>, PersistenceError> {
        let statement = prepare(conn, &self.sql.current_versions)?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        current_versions(&mut tx, &statement, batch)
    }
}

fn current_versions(
    tx: &mut Transaction<'_>,
    sql: &Statement,
    batch: &[StreamAppend],
) -> Result<Vec<u64>, PersistenceError> {
    let ids: Vec<&str> = batch.iter().map(|a| a.stream_id.as_str()).collect();
    let rows = tx.query(sql, &[&ids]).map_err(classify)?;
    let mut current = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0).map_err(|e| corrupt(None, "stream id", e))?;
        let version: i64 = row.try_get(1).map_err(|e| corrupt(None, "version", e))?;
        let version = u64::try_from(version)
            .map_err(|e| corrupt(None, &format!("version of stream `{id}`"), e))?;
        current.insert(id, version);
    }
    Ok(batch
        .iter()
        .map(|a| current.get(&a.stream_id).copied().unwrap_or(0))
        .collect())
}
