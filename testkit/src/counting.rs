//! A store wrapper that counts what goes through it, so that a scenario can show what an
//! operation costs without timing it.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eventsourcing::persistence::{
    AggregateRecorder, EventQuery, Layered, PersistenceError, ProcessRecorder, RecorderLayer,
    SnapshotRecorder, Storage, StoredEventRef, StoredSnapshot, StreamAppend, Tracking,
};

/// Wraps a store and counts what goes through it, to show what an operation costs without
/// timing it: events and snapshots read, and transactions with a tracking record.
pub struct CountingStorage {
    inner: Arc<dyn Storage>,
    events_read: AtomicU64,
    snapshots_read: AtomicU64,
    tracked_appends: AtomicU64,
    tracking_reads: AtomicU64,
}

impl CountingStorage {
    /// Counts reads of `inner`: a [`Storage`] whose counters are reached through `Deref`.
    #[must_use]
    pub fn new(inner: Arc<dyn Storage>) -> Layered<Self> {
        Layered(Self {
            inner,
            events_read: AtomicU64::new(0),
            snapshots_read: AtomicU64::new(0),
            tracked_appends: AtomicU64::new(0),
            tracking_reads: AtomicU64::new(0),
        })
    }

    /// Events visited by `for_each_event` (so also returned by `select_events`) since the
    /// last reset.
    #[must_use]
    pub fn events_read(&self) -> u64 {
        self.events_read.load(Ordering::SeqCst)
    }

    /// Snapshots returned by `latest_snapshot` since the last reset.
    #[must_use]
    pub fn snapshots_read(&self) -> u64 {
        self.snapshots_read.load(Ordering::SeqCst)
    }

    /// Appends with a tracking record since the last reset (one transaction each).
    #[must_use]
    pub fn tracked_appends(&self) -> u64 {
        self.tracked_appends.load(Ordering::SeqCst)
    }

    /// `max_tracking_position` calls (one round trip each) since the last reset.
    #[must_use]
    pub fn tracking_reads(&self) -> u64 {
        self.tracking_reads.load(Ordering::SeqCst)
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        self.events_read.store(0, Ordering::SeqCst);
        self.snapshots_read.store(0, Ordering::SeqCst);
        self.tracked_appends.store(0, Ordering::SeqCst);
        self.tracking_reads.store(0, Ordering::SeqCst);
    }
}

impl RecorderLayer for CountingStorage {
    fn inner(&self) -> &dyn Storage {
        &*self.inner
    }
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        if tracking.is_some() {
            self.tracked_appends.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.append(batch, tracking)
    }
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.inner.for_each_event(stream_id, query, &mut |event| {
            self.events_read.fetch_add(1, Ordering::SeqCst);
            visit(event)
        })
    }
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.tracking_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.max_tracking_position(upstream)
    }
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let found = self.inner.latest_snapshot(stream_id, at_most_version)?;
        if found.is_some() {
            self.snapshots_read.fetch_add(1, Ordering::SeqCst);
        }
        Ok(found)
    }
}
