//! The recorder conformance suite on PostgreSQL, in the default ordering mode (transaction
//! ids) and in the table-lock mode. Each test gets its own schema
//! (`es_test_<pid>_<n>_<uuid>`), dropped when the recorder is dropped, so concurrent runs do not
//! interfere. Skipped loudly without `EVENTSOURCING_TEST_POSTGRES_URL`.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

fn fresh() -> Option<Arc<dyn Storage>> {
    eventsourcing_tests::fresh_postgres("postgres conformance")
}

eventsourcing_testkit::recorder_conformance!(fresh);

/// The same suite on the non-default ordering mode.
mod table_lock {
    use std::sync::Arc;

    use eventsourcing::persistence::postgres::OrderingMode;
    use eventsourcing::persistence::{PostgresConfig, PostgresRecorder, Storage};

    fn fresh() -> Option<Arc<dyn Storage>> {
        let url = eventsourcing_tests::postgres_url("postgres conformance (table lock)")?;
        let config = PostgresConfig::new(url)
            .schema(eventsourcing_tests::unique_schema())
            .ordering(OrderingMode::TableLock)
            .drop_schema_on_drop_for_testing();
        Some(Arc::new(PostgresRecorder::open(config).expect("open")))
    }

    eventsourcing_testkit::recorder_conformance!(fresh);
}
