//! The recorder contract against a model, on PostgreSQL (one schema for all cases: every case
//! uses fresh stream ids, and the model only reads the streams it wrote).

use std::sync::Arc;

use eventsourcing_tests::model;

#[test]
fn postgres_recorder_agrees_with_the_model() {
    let Some(store) = eventsourcing_tests::fresh_postgres("postgres model") else {
        return;
    };
    model::run(&|| Arc::clone(&store), 30).expect("PostgreSQL recorder follows the contract");
}
