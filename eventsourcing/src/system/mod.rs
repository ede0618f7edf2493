//! The system layer: what runs beside applications. The persistence subscriber (the bus into
//! another store), and the pieces that follow an application's log by position
//! (`follow/`: upstreams, followers, runners): process applications
//! (exactly-once effects) and catch-up projections. `docs/SYSTEM.md` walks through them.

mod competing;
mod error;
mod follow;
mod parked;
mod persistence_subscriber;
mod process;
mod projection;

pub use competing::{partition_of, Competing};
pub use error::SystemError;
pub use follow::{
    Follower, FollowerStatus, Notification, Runner, RunnerHandle, RunnerWaker, Serve, ServeStopper,
    Upstream, DEFAULT_PAGE_SIZE,
};
pub use parked::{ErrorPolicy, ParkedEvent, DISCARDED_TOPIC, PARKED_TOPIC, RETRIED_TOPIC};
pub use persistence_subscriber::PersistenceSubscriber;
pub use process::{Policy, ProcessApplication, Processed, ProcessingContext};
pub use projection::{
    DurableProjection, DurableProjector, Pause, Projection, Projector, SideBySide,
    VersionedProjection,
};

/// The examples of `docs/SYSTEM.md`, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/SYSTEM.md")]
struct SystemGuide;
