//! Domain events: the trait every event type implements, and the envelope that carries an event
//! with its stream, version and metadata.

use std::fmt;

use uuid::Uuid;

use super::error::DomainError;
use super::metadata::Metadata;
use super::topic::TopicRegistration;

/// A type of domain event: one event (a struct) or a family of events (an enum, one topic per
/// variant).
///
/// Implemented by `#[entity]` for the event enum it generates and by `#[derive(DomainEvent)]`
/// for hand-written types. The payload format is JSON; the topic and schema version are stored
/// beside the payload, never inside it.
pub trait DomainEvent: Sized + Clone + fmt::Debug + Send + Sync + 'static {
    /// Every topic this type can produce, with versions, aliases and upcasters.
    fn registrations() -> &'static [TopicRegistration];

    /// The registration of this event value's topic.
    fn registration(&self) -> &'static TopicRegistration;

    /// The topic of this event value, e.g. `"Dog.TrickAdded"`.
    fn topic(&self) -> &'static str {
        self.registration().topic
    }

    /// The schema version this code writes for this event value.
    fn schema_version(&self) -> u32 {
        self.registration().version
    }

    /// Encodes the payload (the event's fields, without topic or version) as JSON.
    ///
    /// # Errors
    /// [`DomainError::Encode`] when a field's `Serialize` impl fails.
    fn encode(&self) -> Result<Vec<u8>, DomainError>;

    /// Decodes a payload written at the current schema version of the canonical `topic`.
    ///
    /// # Errors
    /// [`DomainError::UnknownTopic`] when this type has no such topic,
    /// [`DomainError::Payload`] when the bytes are not the event's JSON.
    fn decode(topic: &str, payload: &[u8]) -> Result<Self, DomainError>;

    /// Decodes an already parsed (and upcast) JSON value of the canonical `topic`.
    ///
    /// Provided: writes the value back to bytes and calls [`DomainEvent::decode`], so that a
    /// type's `Deserialize` is compiled for one deserializer only (bytes), not for
    /// `serde_json::Value` as well. Only payloads stored at an older schema version (upcast
    /// ones) come this way. Override it to decode the value directly; an impl whose `decode`
    /// parses the bytes and calls `decode_value` must override it, or the two call each other
    /// without end.
    ///
    /// # Errors
    /// As [`DomainEvent::decode`].
    fn decode_value(topic: &str, value: serde_json::Value) -> Result<Self, DomainError> {
        let bytes = serde_json::to_vec(&value).map_err(|source| DomainError::Payload {
            topic: topic.to_owned(),
            source,
        })?;
        Self::decode(topic, &bytes)
    }

    /// The topics of this type, in declaration order.
    fn topics() -> Vec<&'static str> {
        Self::registrations().iter().map(|r| r.topic).collect()
    }

    /// Finds the registration for `topic`, following aliases.
    ///
    /// # Errors
    /// [`DomainError::UnknownTopic`] listing this type's topics.
    fn resolve(topic: &str) -> Result<&'static TopicRegistration, DomainError> {
        let regs = Self::registrations();
        regs.iter()
            .find(|r| r.topic == topic)
            .or_else(|| regs.iter().find(|r| r.aliases.contains(&topic)))
            .ok_or_else(|| DomainError::UnknownTopic {
                topic: topic.to_owned(),
                known: {
                    let mut known: Vec<String> = regs.iter().map(|r| r.topic.to_owned()).collect();
                    known.sort();
                    known
                },
            })
    }

    /// Decodes a payload stored under `topic` (canonical or alias) at `schema_version`,
    /// upcasting it first when it is older than the current version.
    ///
    /// # Errors
    /// Unknown topic, a version with no upcaster, a version newer than the code, a failing
    /// upcaster or a payload of the wrong shape.
    fn decode_stored(
        topic: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DomainError> {
        let registration = Self::resolve(topic)?;
        if schema_version == registration.version {
            return Self::decode(registration.topic, payload);
        }
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|source| DomainError::Payload {
                topic: registration.topic.to_owned(),
                source,
            })?;
        let value = registration.upcast(schema_version, value)?;
        Self::decode_value(registration.topic, value)
    }
}

/// Returns the topic of an event value: the seed's "function to get the event topic".
pub fn topic_of<E: DomainEvent>(event: &E) -> &'static str {
    event.topic()
}

/// A domain event with the identity of the entity it belongs to.
///
/// `version` counts the entity's events from 1: the creation event has version 1.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope<E> {
    /// The id of the entity (the stream) the event belongs to.
    pub stream_id: Uuid,
    /// The position of the event in its stream, from 1.
    pub version: u64,
    /// Event id, time, causation, correlation and user values.
    pub metadata: Metadata,
    /// The position in the application's global log, once recorded.
    pub position: Option<u64>,
    /// The event itself.
    pub event: E,
}

impl<E: DomainEvent> EventEnvelope<E> {
    /// Wraps an event with fresh metadata.
    pub fn new(stream_id: Uuid, version: u64, event: E) -> Self {
        Self {
            stream_id,
            version,
            metadata: Metadata::new(),
            position: None,
            event,
        }
    }

    /// The topic of the event.
    pub fn topic(&self) -> &'static str {
        self.event.topic()
    }
}
