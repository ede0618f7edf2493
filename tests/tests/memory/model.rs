//! The recorder contract against a model, on the memory recorder, and proof that the check
//! catches a store that ignores expected versions.

use std::sync::Arc;

use eventsourcing::persistence::{
    AggregateRecorder, EventQuery, Layered, MemoryRecorder, PersistenceError, RecorderLayer,
    Storage, StreamAppend, Tracking,
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

impl RecorderLayer for IgnoresExpectedVersion {
    fn inner(&self) -> &dyn Storage {
        &self.0
    }
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
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
        self.0.append(&rebased, tracking)
    }
}

#[test]
fn the_model_check_catches_a_store_that_ignores_expected_versions() {
    let broken = || -> Store { Arc::new(Layered(IgnoresExpectedVersion(MemoryRecorder::new()))) };
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
