//! Writes of events: the append (version checks, the tracking guard, inserts) run in the group
//! committer's transaction, the deletion of a stream and updates in place.

use crate::persistence::Conflict;
use rusqlite::{params, Connection};

use super::error::{from_sqlite, is_unique_violation};
use super::group_commit::Member;
use super::rows::{count_u64, encode_event};
use super::SqliteRecorder;
use crate::persistence::recorder::{check_not_tracked, validate_append, validate_text};
use crate::persistence::{PersistenceError, StoredEvent, StreamAppend, Tracking};

impl SqliteRecorder {
    pub(super) fn max_version(
        conn: &Connection,
        sql: &str,
        stream_id: &str,
    ) -> Result<u64, PersistenceError> {
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
    pub(super) fn insert_conflict(
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
                Ok(actual) => PersistenceError::Conflict(Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected_version,
                    actual,
                }),
                Err(error) => error,
            },
            Err(error) => from_sqlite(error),
        }
    }

    pub(super) fn append_inner(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        validate_append(batch, tracking)?;
        if let Some(t) = tracking {
            tracked_position(t)?;
        }
        if tracking.is_none() && batch.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded here, in the appender's thread: bad input fails before the writer, and the
        // leader of a group does not encode everyone's events in turn.
        let encoded = batch
            .iter()
            .map(|a| {
                a.events
                    .iter()
                    .map(encode_event)
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let own = Member {
            batch,
            encoded: &encoded,
            tracking,
        };
        // Run by whichever thread leads the group this append joins.
        let run = |tx: &Connection, member: Member<'_>| self.append_in(tx, member);
        self.writer.append(own, &run)
    }

    /// One append inside the group transaction (in its own savepoint): the fence, the version
    /// checks, the tracking record and the inserts.
    fn append_in(&self, tx: &Connection, member: Member<'_>) -> Result<Vec<u64>, PersistenceError> {
        let Member {
            batch,
            encoded,
            tracking,
        } = member;
        // First: a fenced committer learns nothing else about the store.
        if let Some(lease) = tracking.and_then(|t| t.lease.as_ref()) {
            self.check_fence(tx, lease)?;
        }
        if !self.config.skip_version_check {
            for append in batch {
                let actual = Self::max_version(tx, &self.sql.max_version, &append.stream_id)?;
                if actual != append.expected_version {
                    return Err(PersistenceError::Conflict(Conflict {
                        stream_id: append.stream_id.clone(),
                        expected: append.expected_version,
                        actual,
                    }));
                }
            }
        }
        if let Some(t) = tracking {
            let position = tracked_position(t)?;
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
        for (append, encoded) in batch.iter().zip(encoded) {
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
                positions.push(
                    u64::try_from(position).map_err(|_| PersistenceError::Corrupt {
                        detail: format!("SQLite assigned a negative position {position}"),
                    })?,
                );
            }
        }
        Ok(positions)
    }

    pub(super) fn delete_stream_and_snapshots(
        &self,
        stream_id: &str,
    ) -> Result<u64, PersistenceError> {
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

    pub(super) fn update_in_place(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
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

/// The tracking position as SQLite stores it (a 64-bit signed integer).
fn tracked_position(t: &Tracking) -> Result<i64, PersistenceError> {
    i64::try_from(t.position).map_err(|_| {
        PersistenceError::Config(format!(
            "tracking position {} of upstream `{}` does not fit a 64-bit signed integer",
            t.position, t.upstream
        ))
    })
}
