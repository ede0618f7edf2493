//! The recorder traits: the small contract every storage backend implements.
//!
//! Three layers, as in the Python library: an [`AggregateRecorder`] keeps streams with
//! optimistic concurrency; an [`ApplicationRecorder`] adds the global log (positions); a
//! [`ProcessRecorder`] adds tracking records, written by the same append as new events.
//! Beside them, [`AdminRecorder`] (one event by id, delete a stream, update in place) and
//! [`SnapshotRecorder`]; [`Storage`] is all five, what a store URL opens.
//!
//! The required methods are the streaming forms ([`AggregateRecorder::for_each_event`],
//! [`ApplicationRecorder::select_notifications_into`]); the collecting forms are provided on
//! top of them and no backend overrides them, so a wrapper that forwards the required methods
//! takes exactly the path production takes. [`Layered`] is such a wrapper, for an
//! interceptor that changes one method and forwards the rest. The conformance suite
//! (`eventsourcing-testkit`) runs the same checks against every implementation.
//!
//! Leases ([`LeaseRecorder`], for competing instances of one follower) are an optional
//! capability of a process recorder: [`ProcessRecorder::leases`].

mod forward;
mod validate;

use std::ops::ControlFlow;

use uuid::Uuid;

use super::error::PersistenceError;
use super::lease::LeaseRecorder;
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};

pub use forward::{Layered, RecorderLayer};
pub use validate::{
    check_not_tracked, validate_append, validate_batch, validate_text, validate_tracking,
    MAX_IDENTIFIER_BYTES,
};

/// Keeps streams of events with optimistic concurrency.
pub trait AggregateRecorder: Send + Sync {
    /// Appends events to one or more streams in one atomic step, with an optional tracking
    /// record of the upstream position these events were derived from.
    ///
    /// Contract:
    /// - all events of all streams, and the tracking record, are written, or nothing is;
    /// - each stream must be at its `expected_version` (0 when new), even a stream with no new
    ///   events (which asserts its version without writing), otherwise the call fails
    ///   with [`PersistenceError::Conflict`] naming the stream, the expected and the actual
    ///   version, and nothing is written;
    /// - versions in each [`StreamAppend`] run from `expected_version + 1` without gaps;
    /// - positions are assigned in batch order and returned in the same order; every position is
    ///   greater than every position committed before, and readers never see a lower position
    ///   appear after a higher one (gap-free global order). A recorder without a global log
    ///   (Cassandra) returns no positions, and refuses a batch of several streams with
    ///   [`PersistenceError::Unsupported`], writing nothing;
    /// - with `tracking`, the upstream must have no tracked position at or above
    ///   `tracking.from_position`, checked atomically with the write (also between
    ///   processes), otherwise [`PersistenceError::AlreadyTracked`] and nothing is written:
    ///   some of the events this commit covers were processed already, by this instance or
    ///   another. A recorder that keeps no tracking records refuses a tracking record with
    ///   [`PersistenceError::Unsupported`].
    ///
    /// # Errors
    /// Conflict, already tracked, invalid batch, limits, or backend failures.
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError>;

    /// Calls `visit` with each event of one stream in a version range (`query`: from and to
    /// version, inclusive), ascending or descending, at most `query.limit` of them, until
    /// `visit` breaks. Repositories load aggregates through it, decoding each event straight
    /// from the backend's row without copying it.
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
    /// [`AggregateRecorder::for_each_event`] visits, owned. Provided; not to be overridden.
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
}

/// An aggregate recorder with a global, gap-free log of every event.
pub trait ApplicationRecorder: AggregateRecorder {
    /// Appends to `into` the events in position order from `query.from_position` (and up to
    /// `query.to_position`), at most `query.limit`, optionally only some topics, so that a
    /// reader of many pages can reuse one vector's allocation for all of them (as
    /// [`NotificationLog::iter`](crate::application::NotificationLog::iter) does). Every event
    /// has `position` set. On error `into` is left as it was.
    ///
    /// Only events a follower can read without ever missing an earlier one are returned: a
    /// recorder whose positions can commit out of order (PostgreSQL's transaction-id mode)
    /// returns nothing above the oldest running writer, and may wait briefly (bounded) for
    /// its own last append to become readable.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError>;

    /// [`select_notifications_into`](Self::select_notifications_into) a new vector.
    /// Provided; not to be overridden.
    ///
    /// # Errors
    /// As `select_notifications_into`.
    fn select_notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        let mut events = Vec::new();
        self.select_notifications_into(query, &mut events)?;
        Ok(events)
    }

    /// The highest position that readers can see (0 when empty).
    ///
    /// # Errors
    /// Backend failures.
    fn max_position(&self) -> Result<u64, PersistenceError>;
}

/// An application recorder that keeps tracking records: how far it has processed other
/// applications' logs. They are written by [`AggregateRecorder::append`] with a tracking
/// record, atomically with the events.
pub trait ProcessRecorder: ApplicationRecorder {
    /// The highest position recorded for `upstream`, if any.
    ///
    /// # Errors
    /// Backend failures.
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError>;

    /// The store's leases, when it keeps them (memory, SQLite and PostgreSQL do): what
    /// competing instances of one follower share an upstream with. `None` by default.
    ///
    /// This is a capability, not a collecting form: forwarding impls forward it.
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        None
    }
}

/// Administration of stored events: what tools, migrations and deletions need and the hot
/// paths of an application never call.
pub trait AdminRecorder: Send + Sync {
    /// One event by its event id.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError>;

    /// Deletes every event of a stream and every snapshot of it, in one transaction where
    /// the backend has them (otherwise snapshots first, so that a crash half-way never leaves
    /// a snapshot without its events); returns how many events were deleted. Positions of
    /// deleted events are never given again.
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

/// Keeps snapshots of entity state, beside the events.
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

/// A backend that keeps events, tracking records and snapshots, and can be administered:
/// what a store URL opens.
pub trait Storage: ProcessRecorder + AdminRecorder + SnapshotRecorder {}

impl<T: ProcessRecorder + AdminRecorder + SnapshotRecorder + ?Sized> Storage for T {}
