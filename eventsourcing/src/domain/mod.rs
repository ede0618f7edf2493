//! The domain layer: entities, aggregates, events, topics and metadata. No I/O happens here.

mod aggregate;
mod entity;
mod error;
mod event;
mod metadata;
mod snapshot;
pub mod topic;

pub use aggregate::{Aggregate, Checkpoint, ReplayError};
pub use entity::Entity;
pub use error::DomainError;
pub use event::{topic_of, DomainEvent, EventEnvelope};
pub use metadata::{EventContext, Metadata, Timestamp};
pub use snapshot::SnapshotCodec;
pub use topic::{
    known_topics, register, resolve_topic, validate_registry, EventTypeRegistration,
    TopicRegistration, UpcastFn, Upcaster,
};
