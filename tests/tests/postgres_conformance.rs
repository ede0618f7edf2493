//! The recorder conformance suite on PostgreSQL. Each test gets its own schema
//! (`es_test_<pid>_<n>_<uuid>`), dropped when the recorder is dropped, so concurrent runs do not
//! interfere. Skipped loudly without `EVENTSOURCING_TEST_POSTGRES_URL`.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

fn fresh() -> Option<Arc<dyn Storage>> {
    eventsourcing_tests::fresh_postgres("postgres conformance")
}

eventsourcing_tests::recorder_conformance!(fresh);
