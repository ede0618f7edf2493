//! The recorder contract against a model, on Cassandra (one keyspace for all cases: every case
//! uses fresh stream ids, and the model only reads the streams it wrote).

use std::sync::Arc;

use eventsourcing_tests::model;

#[test]
fn cassandra_recorder_agrees_with_the_model() {
    let Some(store) = eventsourcing_tests::fresh_cassandra("cassandra model") else {
        return;
    };
    model::run(&|| Arc::clone(&store), 30).expect("Cassandra recorder follows the contract");
}
