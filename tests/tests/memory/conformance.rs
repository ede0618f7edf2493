//! The recorder conformance suite on the in-memory recorder.

use std::sync::Arc;

use eventsourcing::persistence::{MemoryRecorder, Storage};

#[allow(clippy::unnecessary_wraps)]
fn fresh() -> Option<Arc<dyn Storage>> {
    Some(Arc::new(MemoryRecorder::new()))
}

eventsourcing_tests::recorder_conformance!(fresh);
