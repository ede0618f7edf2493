//! Reliability on every backend: crash cycles under SIGKILL, hostile data, injected faults and
//! round trips.
//!
//! One test binary per backend or layer: each binary links the whole framework once, so a few
//! binaries build and link far faster, and take far less disk, than one binary per file.

mod crash;
mod data;
mod faults;
mod roundtrip;
