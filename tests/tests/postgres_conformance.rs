//! The recorder conformance suite on PostgreSQL. Each test gets its own schema
//! (`es_test_<pid>_<n>_<uuid>`), dropped when the recorder is dropped, so concurrent runs do not
//! interfere. Skipped loudly without `EVENTSOURCING_TEST_POSTGRES_URL`.

use std::sync::Arc;

use eventsourcing::persistence::{PostgresConfig, PostgresRecorder, Storage};

fn fresh() -> Option<Arc<dyn Storage>> {
    let url = eventsourcing_tests::postgres_url("postgres conformance")?;
    let config = PostgresConfig::new(url)
        .schema(eventsourcing_tests::unique_schema())
        .drop_schema_on_drop_for_testing();
    Some(Arc::new(
        PostgresRecorder::open(config).expect("open the PostgreSQL recorder"),
    ))
}

eventsourcing_tests::recorder_conformance!(fresh);
