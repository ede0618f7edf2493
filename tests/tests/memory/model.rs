//! The recorder contract against a model, on the memory recorder, and proof that the check
//! catches a store that ignores expected versions.

use std::sync::Arc;

use eventsourcing::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, MemoryRecorder, NotificationQuery,
    PersistenceError, ProcessRecorder, SnapshotRecorder, StoredEvent, StoredSnapshot, StreamAppend,
    Tracking,
};
use eventsourcing_tests::conformance::Store;
use eventsourcing_tests::model;

#[test]
fn memory_recorder_agrees_with_the_model() {
    model::run(&|| Arc::new(MemoryRecorder::new()), 300)
        .expect("memory recorder follows the contract");
}

/// A deliberately broken store: it appends at whatever version the stream has, ignoring the
/// writer's expected version (the classic lost-update bug).
struct IgnoresExpectedVersion(MemoryRecorder);

impl AggregateRecorder for IgnoresExpectedVersion {
    fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, PersistenceError> {
        let rebased: Vec<StreamAppend> = batch
            .iter()
            .map(|a| {
                let current = self
                    .0
                    .select_events(&a.stream_id, &EventQuery::all().descending().limit(1))?;
                let actual = current.first().map_or(0, |e| e.version);
                let mut a = a.clone();
                for (offset, e) in (1u64..).zip(&mut a.events) {
                    e.version = actual + offset;
                }
                a.expected_version = actual;
                Ok(a)
            })
            .collect::<Result<_, PersistenceError>>()?;
        self.0.append(&rebased)
    }
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(
            eventsourcing::persistence::StoredEventRef<'_>,
        ) -> std::ops::ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.0.for_each_event(stream_id, query, visit)
    }
    fn event_by_id(&self, event_id: uuid::Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.0.event_by_id(event_id)
    }
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.0.delete_stream(stream_id)
    }
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.0.update_events(events)
    }
}
impl ApplicationRecorder for IgnoresExpectedVersion {
    fn select_notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        self.0.select_notifications(query)
    }
    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.0.max_position()
    }
}
impl ProcessRecorder for IgnoresExpectedVersion {
    fn append_tracked(
        &self,
        batch: &[StreamAppend],
        tracking: &Tracking,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.0.append_tracked(batch, tracking)
    }
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.0.max_tracking_position(upstream)
    }
}
impl SnapshotRecorder for IgnoresExpectedVersion {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.0.put_snapshot(snapshot)
    }
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        self.0.latest_snapshot(stream_id, at_most)
    }
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.0.delete_snapshots(stream_id)
    }
}

#[test]
fn the_model_check_catches_a_store_that_ignores_expected_versions() {
    let broken = || -> Store { Arc::new(IgnoresExpectedVersion(MemoryRecorder::new())) };
    let error = model::run(&broken, 300).expect_err("the broken store must be caught");
    eprintln!("caught as expected: {error}");
    let race = std::panic::catch_unwind(|| {
        eventsourcing_tests::conformance::concurrent_writers_one_stream(&broken());
    });
    assert!(
        race.is_err(),
        "the same-stream race check must fail on the broken store"
    );
}
