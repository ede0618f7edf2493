//! The system layer: the in-process bus and the persistence subscriber.

mod bus;
mod persistence_subscriber;

pub use bus::{BusError, EventBus, SubscriptionId};
pub use persistence_subscriber::PersistenceSubscriber;
