//! The SQLite recorder: the conformance suite, durability and file-level faults, the evolution
//! scenarios and the model-based test.
//!
//! One test binary per backend or layer: each binary links the whole framework once, so a few
//! binaries build and link far faster, and take far less disk, than one binary per file.

mod competing;
mod conformance;
mod durability;
mod evolution;
mod group_commit;
mod model;
mod wakeups;
