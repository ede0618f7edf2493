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

use eventsourcing::persistence::BoxError;
use eventsourcing::system::{Notification, Projection};

/// A projection that counts the events it applied (and forgets them on reset).
#[derive(Default)]
struct Count(u64);

impl Projection for Count {
    fn name(&self) -> &str {
        "count"
    }
    fn apply(&mut self, _: &Notification<'_>) -> Result<(), BoxError> {
        self.0 += 1;
        Ok(())
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}
