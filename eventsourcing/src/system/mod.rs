//! The system layer: the in-process bus, the persistence subscriber, and the pieces that
//! follow an application's log by position: process applications (exactly-once effects),
//! catch-up projections, and runners. `docs/SYSTEM.md` walks through them.

mod bus;
mod error;
mod persistence_subscriber;
mod process;
mod projection;
mod runner;
mod upstream;

pub use bus::{BusError, EventBus, SubscriptionId};
pub use error::SystemError;
pub use persistence_subscriber::PersistenceSubscriber;
pub use process::{Policy, ProcessApplication, Processed, ProcessingContext, DEFAULT_PAGE_SIZE};
pub use projection::{DurableProjection, DurableProjector, Projection, Projector};
pub use runner::{Follower, Runner, RunnerHandle};
pub use upstream::{Notification, Upstream};

/// The examples of `docs/SYSTEM.md`, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/SYSTEM.md")]
struct SystemGuide;
