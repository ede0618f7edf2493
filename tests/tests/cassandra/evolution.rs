//! The evolution scenarios (snapshots, time travel, upcasting, aliases, migration,
//! compression, encryption) on Cassandra, one keyspace per test. Stored-event migration scans
//! the global log, which Cassandra does not keep: those scenarios are left out.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

fn fresh() -> Option<Arc<dyn Storage>> {
    eventsourcing_tests::fresh_cassandra("cassandra evolution")
}

eventsourcing_testkit::evolution_scenarios!(fresh, without_global_log);
