//! The recorder contract against a model, on SQLite (private in-memory databases, so that
//! hundreds of cases stay fast; the file-backed recorder shares every statement).

use std::sync::Arc;

use eventsourcing::persistence::SqliteRecorder;
use eventsourcing_tests::model;

#[test]
fn sqlite_recorder_agrees_with_the_model() {
    model::run(
        &|| Arc::new(SqliteRecorder::in_memory().expect("open in-memory")),
        100,
    )
    .expect("SQLite recorder follows the contract");
}
