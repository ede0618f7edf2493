//! The PostgreSQL recorder: the conformance suite, concurrency, operations on throwaway clusters,
//! the evolution scenarios and the model-based test. Skipped loudly without
//! `EVENTSOURCING_TEST_POSTGRES_URL`.
//!
//! One test binary per backend or layer: each binary links the whole framework once, so a few
//! binaries build and link far faster, and take far less disk, than one binary per file.

mod competing;
mod concurrency;
mod conformance;
mod evolution;
mod model;
mod operations;
mod wakeups;
