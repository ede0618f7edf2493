//! The domain layer's error type.

use thiserror::Error;

/// Everything that can go wrong in the domain layer: topics, payload codecs, upcasting and
/// mutators. No I/O happens here, so every variant describes the data, not a backend.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A topic that no registered event type declares (nor lists as an alias).
    #[error("unknown topic `{topic}`; known topics: {}", known.join(", "))]
    UnknownTopic {
        /// The topic that was asked for.
        topic: String,
        /// Every topic the registry (or the event type) knows, sorted.
        known: Vec<String>,
    },
    /// Two registrations claim the same topic or alias.
    #[error("topic `{topic}` is registered twice: by `{first}` and by `{second}`")]
    DuplicateTopic {
        /// The contested topic.
        topic: String,
        /// The Rust type of the first registration.
        first: &'static str,
        /// The Rust type of the second registration.
        second: &'static str,
    },
    /// A payload that is not valid JSON or does not have the shape of the event.
    #[error("payload of `{topic}` cannot be decoded: {source}")]
    Payload {
        /// The (canonical) topic of the event.
        topic: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// An event could not be encoded (a `Serialize` impl failed).
    #[error("event `{topic}` cannot be encoded: {source}")]
    Encode {
        /// The topic of the event.
        topic: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// A stored schema version has no upcaster leading to the current version.
    #[error("topic `{topic}` has no upcaster from version {from_version} (current version {current_version})")]
    MissingUpcaster {
        /// The topic.
        topic: String,
        /// The version that cannot be upcast.
        from_version: u32,
        /// The version the code understands.
        current_version: u32,
    },
    /// A stored schema version newer than the code: data written by a newer deployment.
    #[error("topic `{topic}` was stored at version {stored_version}, newer than this code's version {current_version}")]
    FutureVersion {
        /// The topic.
        topic: String,
        /// The version in storage.
        stored_version: u32,
        /// The version the code understands.
        current_version: u32,
    },
    /// An upcaster rejected the stored value.
    #[error("upcasting `{topic}` from version {from_version} failed: {reason}")]
    Upcast {
        /// The topic.
        topic: String,
        /// The version the failing upcaster starts from.
        from_version: u32,
        /// What the upcaster said.
        reason: String,
    },
    /// The first event of an entity is not a creation event.
    #[error("event `{topic}` cannot create an entity: it needs an existing one")]
    NotCreated {
        /// The topic of the offending event.
        topic: String,
    },
    /// A creation event was applied to an entity that already exists.
    #[error("event `{topic}` creates an entity, but the entity already exists")]
    AlreadyCreated {
        /// The topic of the offending event.
        topic: String,
    },
    /// A hand-written mutator refused an event.
    #[error("the mutator rejected `{topic}`: {reason}")]
    Rejected {
        /// The topic of the rejected event.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A mutator panicked while an event was replayed.
    #[error("the mutator panicked on `{topic}`: {message}")]
    MutatorPanicked {
        /// The topic of the event being applied.
        topic: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// A mutator panicked while it changed the aggregate's state in place, outside any
    /// command that could roll it back: the state may be half changed, so the aggregate
    /// records and saves nothing more. Load it again from the store.
    #[error("aggregate {id} of `{entity}` is poisoned: a mutator panicked while it changed the state; load it again")]
    Poisoned {
        /// The entity's name.
        entity: &'static str,
        /// The aggregate's id.
        id: uuid::Uuid,
    },
}

impl DomainError {
    /// A [`DomainError::Rejected`] for hand-written mutators.
    pub fn rejected(topic: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Rejected {
            topic: topic.into(),
            reason: reason.into(),
        }
    }
}
