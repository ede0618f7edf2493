//! Applications and the system layer: applications, batches, the harness, process applications,
//! projections, the seed example, topics and transcoders.
//!
//! One test binary per backend or layer: each binary links the whole framework once, so a few
//! binaries build and link far faster, and take far less disk, than one binary per file.

mod application;
mod asynchronous;
mod batch;
mod competing;
mod harness;
mod metrics;
mod poison;
mod process;
mod projection;
mod projection_ops;
mod seed_example;
mod topics;
mod transcoders;
