//! The recorder traits: the small contract every storage backend implements.
//!
//! Three layers, as in the Python library: an [`AggregateRecorder`] keeps streams with
//! optimistic concurrency; an [`ApplicationRecorder`] adds the global log (positions); a
//! [`ProcessRecorder`] adds tracking records written atomically with new events. The
//! conformance suite in `tests/` runs the same checks against every implementation.

use std::ops::ControlFlow;
use std::sync::Arc;

use uuid::Uuid;

use super::error::PersistenceError;
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};

/// Keeps streams of events with optimistic concurrency.
pub trait AggregateRecorder: Send + Sync {
    /// Appends events to one or more streams in one atomic step.
    ///
    /// Contract:
    /// - all events of all streams are written, or none;
    /// - each stream must be at its `expected_version` (0 when new), even a stream with no new
    ///   events (which asserts its version without writing), otherwise the call fails
    ///   with [`PersistenceError::Conflict`] naming the stream, the expected and the actual
    ///   version, and nothing is written;
    /// - versions in each [`StreamAppend`] run from `expected_version + 1` without gaps;
    /// - positions are assigned in batch order and returned in the same order; every position is
    ///   greater than every position committed before, and readers never see a lower position
    ///   appear after a higher one (gap-free global order). A recorder without a global log
    ///   (Cassandra) returns no positions, and refuses a batch of several streams with
    ///   [`PersistenceError::Unsupported`], writing nothing.
    ///
    /// # Errors
    /// Conflict, invalid batch, limits, or backend failures.
    fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, PersistenceError>;

    /// Calls `visit` with each event of one stream in a version range (`query`: from and to
    /// version, inclusive), ascending or descending, at most `query.limit` of them, until
    /// `visit` breaks. Repositories load aggregates through it, decoding each event straight
    /// from the backend's row without copying it. This is the required form; the collecting
    /// [`AggregateRecorder::select_events`] is provided on top of it, so a wrapper that
    /// forwards this method forwards reads exactly as the store does them.
    ///
    /// `visit` may run while the backend holds a connection or a read lock, so it must not
    /// call back into the recorder.
    ///
    /// # Errors
    /// Backend failures or corrupt rows met before `visit` broke.
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError>;

    /// The events of one stream that `query` selects, collected: the same events as
    /// [`AggregateRecorder::for_each_event`] visits, owned.
    ///
    /// # Errors
    /// As `for_each_event`.
    fn select_events(
        &self,
        stream_id: &str,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        let mut events = Vec::new();
        self.for_each_event(stream_id, query, &mut |event| {
            events.push(event.into_owned());
            ControlFlow::Continue(())
        })?;
        Ok(events)
    }

    /// One event by its event id.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError>;

    /// Deletes every event of a stream; returns how many were deleted.
    ///
    /// # Errors
    /// Backend failures.
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError>;

    /// Rewrites stored events in place (for schema migration), atomically: each event replaces
    /// the topic, schema version, payload and metadata of the stored event with the same
    /// stream, version and event id (a compare and swap: an event deleted and written again
    /// since it was read is not overwritten); positions and event ids do not change.
    ///
    /// # Errors
    /// [`PersistenceError::EventNotFound`] (and nothing is changed) when one is missing or is
    /// another event now.
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError>;
}

/// An aggregate recorder with a global, gap-free log of every event.
pub trait ApplicationRecorder: AggregateRecorder {
    /// Events in position order from `query.from_position`, at most `query.limit`, optionally
    /// only some topics. Every returned event has `position` set.
    ///
    /// Only events a follower can read without ever missing an earlier one are returned: a
    /// recorder whose positions can commit out of order (PostgreSQL's transaction-id mode)
    /// returns nothing above the oldest running writer, and may wait briefly (bounded) for
    /// its own last append to become readable.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn select_notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError>;

    /// [`select_notifications`](Self::select_notifications), appending the events to `into`,
    /// so that a reader of many pages can reuse one vector's allocation for all of them (as
    /// [`NotificationLog::iter`](crate::application::NotificationLog::iter) does). The default
    /// implementation calls `select_notifications`; on error `into` is left as it was.
    ///
    /// # Errors
    /// As `select_notifications`.
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let page = self.select_notifications(query)?;
        if into.is_empty() {
            *into = page;
        } else {
            into.extend(page);
        }
        Ok(())
    }

    /// The highest position that readers can see (0 when empty).
    ///
    /// # Errors
    /// Backend failures.
    fn max_position(&self) -> Result<u64, PersistenceError>;
}

/// An application recorder that also tracks how far it has processed other applications' logs.
pub trait ProcessRecorder: ApplicationRecorder {
    /// As [`AggregateRecorder::append`], and records `tracking` in the same transaction.
    ///
    /// # Errors
    /// As `append`, plus [`PersistenceError::AlreadyTracked`] when the upstream has a tracked
    /// position at or above `tracking.from_position` (nothing is written then): some of the
    /// events this commit covers were processed already, by this instance or another. The
    /// check and the record are atomic with the events, also between processes.
    fn append_tracked(
        &self,
        batch: &[StreamAppend],
        tracking: &Tracking,
    ) -> Result<Vec<u64>, PersistenceError>;

    /// The highest position recorded for `upstream`, if any.
    ///
    /// # Errors
    /// Backend failures.
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError>;
}

/// Keeps snapshots of entity state, beside the events.
///
/// Recorders that implement both this and [`AggregateRecorder`] delete a stream's snapshots in
/// the same transaction as its events ([`AggregateRecorder::delete_stream`]).
pub trait SnapshotRecorder: Send + Sync {
    /// Stores a snapshot, replacing any snapshot of the same stream and version.
    ///
    /// # Errors
    /// Backend failures.
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError>;

    /// The newest snapshot of a stream at or below `at_most_version` (any version when
    /// `None`).
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError>;

    /// Deletes every snapshot of a stream; returns how many were deleted.
    ///
    /// # Errors
    /// Backend failures.
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError>;
}

/// A backend that keeps events, tracking records and snapshots: what a store URL opens.
pub trait Storage: ProcessRecorder + SnapshotRecorder {}

impl<T: ProcessRecorder + SnapshotRecorder + ?Sized> Storage for T {}

macro_rules! forward_recorders {
    ($($ptr:ty),*) => {$(
        impl<R: AggregateRecorder + ?Sized> AggregateRecorder for $ptr {
            fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, PersistenceError> {
                (**self).append(batch)
            }
            fn select_events(&self, stream_id: &str, query: &EventQuery) -> Result<Vec<StoredEvent>, PersistenceError> {
                (**self).select_events(stream_id, query)
            }
            fn for_each_event(
                &self,
                stream_id: &str,
                query: &EventQuery,
                visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
            ) -> Result<(), PersistenceError> {
                (**self).for_each_event(stream_id, query, visit)
            }
            fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
                (**self).event_by_id(event_id)
            }
            fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
                (**self).delete_stream(stream_id)
            }
            fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
                (**self).update_events(events)
            }
        }
        impl<R: ApplicationRecorder + ?Sized> ApplicationRecorder for $ptr {
            fn select_notifications(&self, query: &NotificationQuery) -> Result<Vec<StoredEvent>, PersistenceError> {
                (**self).select_notifications(query)
            }
            fn select_notifications_into(&self, query: &NotificationQuery, into: &mut Vec<StoredEvent>) -> Result<(), PersistenceError> {
                (**self).select_notifications_into(query, into)
            }
            fn max_position(&self) -> Result<u64, PersistenceError> {
                (**self).max_position()
            }
        }
        impl<R: SnapshotRecorder + ?Sized> SnapshotRecorder for $ptr {
            fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
                (**self).put_snapshot(snapshot)
            }
            fn latest_snapshot(&self, stream_id: &str, at_most_version: Option<u64>) -> Result<Option<StoredSnapshot>, PersistenceError> {
                (**self).latest_snapshot(stream_id, at_most_version)
            }
            fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
                (**self).delete_snapshots(stream_id)
            }
        }
        impl<R: ProcessRecorder + ?Sized> ProcessRecorder for $ptr {
            fn append_tracked(&self, batch: &[StreamAppend], tracking: &Tracking) -> Result<Vec<u64>, PersistenceError> {
                (**self).append_tracked(batch, tracking)
            }
            fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
                (**self).max_tracking_position(upstream)
            }
        }
    )*};
}

forward_recorders!(&R, Arc<R>, Box<R>);

/// The longest stream id, topic or tracking upstream name, in bytes (UTF-8), on every backend:
/// 1,024. Longer ones are a [`PersistenceError::LimitExceeded`] before any I/O (PostgreSQL's
/// indexes cannot hold keys of a few kilobytes, and one limit for every backend keeps stores
/// copyable into each other).
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

fn check_identifier(what: &'static str, text: &str) -> Result<(), PersistenceError> {
    if text.len() > MAX_IDENTIFIER_BYTES {
        return Err(PersistenceError::LimitExceeded {
            what,
            limit: MAX_IDENTIFIER_BYTES as u64,
            actual: text.len() as u64,
        });
    }
    Ok(())
}

/// Checks the parts of the append contract that need no storage: non-empty stream ids,
/// contiguous versions starting after the expected version, and text that every backend can
/// store ([`validate_text`]). Recorders call it before any I/O.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`].
pub fn validate_batch(batch: &[StreamAppend]) -> Result<(), PersistenceError> {
    for (index, append) in batch.iter().enumerate() {
        let invalid = |reason: String| PersistenceError::InvalidBatch {
            stream_id: append.stream_id.clone(),
            reason,
        };
        if append.stream_id.is_empty() {
            return Err(invalid("the stream id is empty".into()));
        }
        if append.stream_id.contains('\0') {
            return Err(invalid("the stream id contains a NUL character".into()));
        }
        validate_text(&append.events)?;
        if batch[..index]
            .iter()
            .any(|a| a.stream_id == append.stream_id)
        {
            return Err(invalid("the stream appears twice in one batch".into()));
        }
        for (offset, event) in (1u64..).zip(&append.events) {
            let Some(expected) = append.expected_version.checked_add(offset) else {
                return Err(invalid(format!(
                    "versions after {} run past the largest version",
                    append.expected_version
                )));
            };
            if event.version != expected || event.stream_id != append.stream_id {
                return Err(invalid(format!(
                    "event for stream `{}` has version {}, expected version {expected}",
                    event.stream_id, event.version
                )));
            }
        }
    }
    Ok(())
}

/// Checks a tracking record before any I/O: the upstream name must be non-empty and free of
/// NUL characters (which PostgreSQL cannot store), like stream ids.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`] naming the upstream.
pub fn validate_tracking(tracking: &Tracking) -> Result<(), PersistenceError> {
    let invalid = |reason: &str| PersistenceError::InvalidBatch {
        stream_id: String::new(),
        reason: format!(
            "tracking upstream `{}` {reason}",
            tracking.upstream.escape_debug()
        ),
    };
    if tracking.upstream.is_empty() {
        return Err(invalid("is empty"));
    }
    if tracking.upstream.contains('\0') {
        return Err(invalid("contains a NUL character"));
    }
    check_identifier("tracking upstream name length in bytes", &tracking.upstream)
}

/// The guard of [`ProcessRecorder::append_tracked`], for recorders to call with the highest
/// position tracked for the upstream, read inside the appending transaction.
///
/// # Errors
/// [`PersistenceError::AlreadyTracked`] when that position is at or above
/// `tracking.from_position`.
pub fn check_not_tracked(tracking: &Tracking, max: Option<u64>) -> Result<(), PersistenceError> {
    if max.is_some_and(|max| max >= tracking.from_position) {
        return Err(PersistenceError::AlreadyTracked {
            upstream: tracking.upstream.clone(),
            position: tracking.position,
        });
    }
    Ok(())
}

/// Checks that the text of stored events can be kept by every backend: no NUL character in
/// the stream id, the topic, or the keys and values of the user metadata. (PostgreSQL `TEXT`
/// and `JSONB` cannot hold NUL; the other backends refuse it too, so that data written to one
/// backend can always be copied to another.) Recorders call it before any I/O, on append and
/// on update.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`] naming the stream and the field.
pub fn validate_text(events: &[StoredEvent]) -> Result<(), PersistenceError> {
    for event in events {
        let invalid = |what: &str| PersistenceError::InvalidBatch {
            stream_id: event.stream_id.clone(),
            reason: format!(
                "the {what} of the event at version {} contains a NUL character",
                event.version
            ),
        };
        if event.stream_id.contains('\0') {
            return Err(invalid("stream id"));
        }
        check_identifier("stream id length in bytes", &event.stream_id)?;
        check_identifier("topic length in bytes", &event.topic)?;
        if event.topic.contains('\0') {
            return Err(invalid("topic"));
        }
        if event
            .metadata
            .user
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(invalid("user metadata"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::{AggregateRecorder, ApplicationRecorder};
    use crate::domain::Metadata;
    use crate::persistence::{
        EventQuery, MemoryRecorder, NotificationQuery, StoredEvent, StreamAppend,
    };

    fn event(stream: &str, version: u64, with_user: bool) -> StoredEvent {
        let mut metadata = Metadata::new();
        if with_user {
            metadata
                .user
                .insert("who".into(), format!("user {version}"));
        }
        StoredEvent {
            stream_id: stream.into(),
            version,
            topic: format!("T.{version}"),
            schema_version: 1,
            payload: format!("{{\"n\":{version}}}").into_bytes(),
            metadata,
            position: None,
        }
    }

    /// `for_each_event` lends exactly what `select_events` returns, in the same order, and
    /// stops when the visitor breaks.
    fn lends_what_select_returns(recorder: &dyn AggregateRecorder) {
        let stream = "5f0c1a4e-0000-7000-8000-000000000001";
        let other = "5f0c1a4e-0000-7000-8000-000000000002";
        let batch = |s: &str| StreamAppend {
            stream_id: s.into(),
            expected_version: 0,
            events: (1..=9).map(|v| event(s, v, v % 3 == 0)).collect(),
        };
        assert!(recorder.append(&[batch(stream), batch(other)]).is_ok());
        let queries = [
            EventQuery::all(),
            EventQuery::all().from_version(4),
            EventQuery::all().to_version(6),
            EventQuery::all().from_version(3).to_version(7).limit(2),
            EventQuery::all().descending(),
            EventQuery::all().descending().limit(3).to_version(8),
            EventQuery::all().from_version(20),
        ];
        for query in queries {
            let selected = recorder.select_events(stream, &query).unwrap_or_default();
            let mut lent = Vec::new();
            let visited = recorder.for_each_event(stream, &query, &mut |e| {
                lent.push(e.into_owned());
                ControlFlow::Continue(())
            });
            assert!(visited.is_ok());
            assert_eq!(lent, selected, "{query:?}");
        }
        let mut seen = 0;
        let visited = recorder.for_each_event(stream, &EventQuery::all(), &mut |_| {
            seen += 1;
            if seen == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert!(visited.is_ok());
        assert_eq!(seen, 4);
        let mut none = 0;
        let visited = recorder.for_each_event("missing", &EventQuery::all(), &mut |_| {
            none += 1;
            ControlFlow::Continue(())
        });
        assert!(visited.is_ok());
        assert_eq!(none, 0);
    }

    /// `select_notifications_into` appends exactly what `select_notifications` returns, after
    /// what the vector already held (the limit counts only the new events).
    fn appends_what_select_notifications_returns(recorder: &dyn ApplicationRecorder) {
        let stream = "5f0c1a4e-0000-7000-8000-000000000003";
        let batch = StreamAppend {
            stream_id: stream.into(),
            expected_version: 0,
            events: (1..=9).map(|v| event(stream, v, v % 3 == 0)).collect(),
        };
        assert!(recorder.append(&[batch]).is_ok());
        let queries = [
            NotificationQuery::new(1, 100),
            NotificationQuery::new(1, 4),
            NotificationQuery::new(3, 4).to_position(5),
            NotificationQuery::new(2, 3).topics(["T.2", "T.5", "T.6"]),
            NotificationQuery::new(1, 0),
            NotificationQuery::new(20, 5),
            NotificationQuery::new(u64::MAX, 5),
        ];
        for query in queries {
            let selected = recorder.select_notifications(&query).unwrap_or_default();
            let first = recorder.select_notifications(&NotificationQuery::new(1, 1));
            let mut into = first.unwrap_or_default();
            let kept = into.clone();
            assert!(recorder
                .select_notifications_into(&query, &mut into)
                .is_ok());
            assert_eq!(&into[..kept.len()], &kept[..], "{query:?}");
            assert_eq!(&into[kept.len()..], &selected[..], "{query:?}");
        }
    }

    #[test]
    fn select_notifications_into_matches_select_notifications() {
        appends_what_select_notifications_returns(&MemoryRecorder::new());
        #[cfg(feature = "sqlite")]
        {
            let sqlite = crate::persistence::SqliteRecorder::in_memory();
            assert!(sqlite.is_ok());
            if let Ok(sqlite) = sqlite {
                appends_what_select_notifications_returns(&sqlite);
            }
        }
    }

    /// A recorder that only forwards the required methods, so `select_events` is the default.
    struct Plain(MemoryRecorder);

    impl AggregateRecorder for Plain {
        fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, super::PersistenceError> {
            self.0.append(batch)
        }
        fn for_each_event(
            &self,
            stream_id: &str,
            query: &EventQuery,
            visit: &mut dyn FnMut(crate::persistence::StoredEventRef<'_>) -> ControlFlow<()>,
        ) -> Result<(), super::PersistenceError> {
            self.0.for_each_event(stream_id, query, visit)
        }
        fn event_by_id(
            &self,
            event_id: uuid::Uuid,
        ) -> Result<Option<StoredEvent>, super::PersistenceError> {
            self.0.event_by_id(event_id)
        }
        fn delete_stream(&self, stream_id: &str) -> Result<u64, super::PersistenceError> {
            self.0.delete_stream(stream_id)
        }
        fn update_events(&self, events: &[StoredEvent]) -> Result<(), super::PersistenceError> {
            self.0.update_events(events)
        }
    }

    #[test]
    fn for_each_event_matches_select_events() {
        lends_what_select_returns(&MemoryRecorder::new());
        lends_what_select_returns(&Plain(MemoryRecorder::new()));
        #[cfg(feature = "sqlite")]
        {
            let sqlite = crate::persistence::SqliteRecorder::in_memory();
            assert!(sqlite.is_ok());
            if let Ok(sqlite) = sqlite {
                lends_what_select_returns(&sqlite);
            }
        }
    }
}
