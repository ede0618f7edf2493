//! The evolution scenarios (snapshots, time travel, upcasting, aliases, migration,
//! compression, encryption) on the in-memory recorder.

use std::sync::Arc;

use eventsourcing::persistence::{MemoryRecorder, Storage};

#[allow(clippy::unnecessary_wraps)]
fn fresh() -> Option<Arc<dyn Storage>> {
    Some(Arc::new(MemoryRecorder::new()))
}

eventsourcing_tests::evolution_scenarios!(fresh);
