//! The recorder conformance suite on Cassandra: each check gets a keyspace of its own
//! (dropped with the store). Checks of the global log and of multi-stream appends require the
//! typed `Unsupported` refusal here. Skipped loudly without `EVENTSOURCING_TEST_CASSANDRA_URL`.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

fn fresh() -> Option<Arc<dyn Storage>> {
    eventsourcing_tests::fresh_cassandra("cassandra conformance")
}

eventsourcing_testkit::recorder_conformance!(fresh);

/// The same suite with buckets of 10 events (the suite's largest append), so that streams
/// fill buckets; `cassandra_buckets.rs` crosses boundaries on purpose.
mod small_buckets {
    use std::sync::Arc;

    use eventsourcing::persistence::Storage;

    fn fresh() -> Option<Arc<dyn Storage>> {
        eventsourcing_tests::fresh_cassandra_with("cassandra conformance (small buckets)", 10)
    }

    eventsourcing_testkit::recorder_conformance!(fresh);
}
