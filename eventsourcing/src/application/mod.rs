//! The application layer: the event store (the one door), repositories (the event player),
//! the application object with its bus, the notification log and configuration.

mod app;
mod builder;
mod bus;
mod config;
mod error;
mod event_store;
mod migration;
mod notification_log;
mod repository;
mod saveable;
mod snapshots;

pub use app::Application;
pub use builder::ApplicationBuilder;
pub use bus::{BusError, EventBus, SubscriptionId};
pub use config::{StoreUrl, DEFAULT_URL, URL_ENV};
pub use error::ApplicationError;
pub use event_store::{EventStore, Saved};
pub use migration::{EventRef, MigrateFn, Migration, MigrationProgress, Verification};
pub use notification_log::{NotificationIter, NotificationLog};
pub use repository::{EventSourcedRepository, Repository};
pub use saveable::Saveable;
pub use snapshots::{decode_snapshot, encode_snapshot, LoadReport, SnapshotPolicy, SnapshotStats};
