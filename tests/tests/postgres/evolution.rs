//! The evolution scenarios (snapshots, time travel, upcasting, aliases, migration,
//! compression, encryption) on PostgreSQL, one schema per test.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

fn fresh() -> Option<Arc<dyn Storage>> {
    eventsourcing_tests::fresh_postgres("postgres evolution")
}

eventsourcing_testkit::evolution_scenarios!(fresh);
