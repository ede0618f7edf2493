//! The in-memory recorder certified by the public kit in one call, as any store for another
//! database would be: the conformance checks, the evolution scenarios and the model test.

use std::sync::Arc;

use eventsourcing::persistence::{MemoryRecorder, Storage};

#[allow(clippy::unnecessary_wraps)]
fn fresh() -> Option<Arc<dyn Storage>> {
    Some(Arc::new(MemoryRecorder::new()))
}

eventsourcing_testkit::certify_store!(fresh);
