//! The Cassandra recorder: the conformance suite, bucketed partitions, the evolution scenarios and
//! the model-based test. Skipped loudly without `EVENTSOURCING_TEST_CASSANDRA_URL` (the server
//! restart test lives alone in `cassandra_restart.rs`).
//!
//! One test binary per backend or layer: each binary links the whole framework once, so a few
//! binaries build and link far faster, and take far less disk, than one binary per file.

mod buckets;
mod conformance;
mod evolution;
mod model;
