//! The evolution scenarios (snapshots, time travel, upcasting, aliases, migration,
//! compression, encryption) on SQLite, one temporary file per test.

use std::sync::Arc;

use eventsourcing::persistence::Storage;

#[allow(clippy::unnecessary_wraps)]
fn fresh() -> Option<Arc<dyn Storage>> {
    Some(eventsourcing_tests::fresh_sqlite("sqlite-evolution"))
}

eventsourcing_testkit::evolution_scenarios!(fresh);
