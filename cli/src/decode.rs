//! Decoding payloads for `show` and `verify`: through the mapper's transcoders, then through
//! the user's event types when the tool was built with them ([`crate::Cli::with_events`]),
//! else through the topic registry's upcasters, else as plain JSON.

use eventsourcing::domain::{known_topics, resolve_topic, DomainError};
use eventsourcing::persistence::PayloadContext;
use eventsourcing::{DomainEvent, Mapper, StoredEvent};

/// Decodes one event type's topics: the event's `Debug` form and its JSON at the current
/// schema version.
type DecodeFn = fn(&str, u32, &[u8]) -> Result<Option<Decoded>, DomainError>;

/// A user's event type.
#[derive(Clone, Copy)]
pub(crate) struct TypedDecoder {
    decode: DecodeFn,
}

/// An event decoded through the user's type.
pub(crate) struct Decoded {
    /// `{:?}` of the event value.
    pub(crate) debug: String,
    /// The event encoded again: its JSON at the current schema version.
    pub(crate) current: serde_json::Value,
}

fn decode_as<E: DomainEvent>(
    topic: &str,
    schema_version: u32,
    json: &[u8],
) -> Result<Option<Decoded>, DomainError> {
    if E::resolve(topic).is_err() {
        return Ok(None);
    }
    let event = E::decode_stored(topic, schema_version, json)?;
    let current = event.encode()?;
    let current = serde_json::from_slice(&current).map_err(|source| DomainError::Payload {
        topic: topic.to_owned(),
        source,
    })?;
    Ok(Some(Decoded {
        debug: format!("{event:?}"),
        current,
    }))
}

impl TypedDecoder {
    pub(crate) fn of<E: DomainEvent>() -> Self {
        Self {
            decode: decode_as::<E>,
        }
    }
}

/// What reading one event's payload gave.
pub(crate) enum Payload {
    /// Decoded through the user's type.
    Typed(Decoded),
    /// Upcast through the registry to the topic's current version (no type to decode into).
    Upcast(serde_json::Value),
    /// Plain JSON: the topic is not registered in this binary.
    Json(serde_json::Value),
}

/// Why a payload could not be read.
pub(crate) enum Unreadable {
    /// The transcoders failed (wrong key, not compressed...).
    Transcode(String),
    /// Not JSON.
    NotJson(String),
    /// The topic is unknown to a binary that knows its event types.
    UnknownTopic,
    /// The user's type or the upcasters refused it.
    Domain(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transcode(e) => write!(f, "the payload cannot be transcoded: {e}"),
            Self::NotJson(e) => write!(f, "the payload is not valid JSON: {e}"),
            Self::UnknownTopic => write!(f, "the topic is not known to this binary"),
            Self::Domain(e) => write!(f, "the event does not decode: {e}"),
        }
    }
}

/// The decoders of one run.
pub(crate) struct Decoders {
    mapper: Mapper,
    typed: Vec<TypedDecoder>,
    /// Whether this binary knows event types at all (registered through `inventory` or
    /// [`crate::Cli::with_events`]): only then is an unknown topic a problem.
    knows_types: bool,
}

impl Decoders {
    pub(crate) fn new(mapper: Mapper, typed: Vec<TypedDecoder>) -> Self {
        let knows_types = !typed.is_empty() || !known_topics().is_empty();
        Self {
            mapper,
            typed,
            knows_types,
        }
    }

    /// Reads the payload of `event`.
    pub(crate) fn read(&self, event: &StoredEvent) -> Result<Payload, Unreadable> {
        let context = PayloadContext::event(&event.stream_id, event.version, &event.topic);
        let json = self
            .mapper
            .decode_payload(&event.payload, &context)
            .map_err(|e| Unreadable::Transcode(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| Unreadable::NotJson(e.to_string()))?;
        for typed in &self.typed {
            match (typed.decode)(&event.topic, event.schema_version, &json) {
                Ok(Some(decoded)) => return Ok(Payload::Typed(decoded)),
                Ok(None) => {}
                Err(e) => return Err(Unreadable::Domain(e.to_string())),
            }
        }
        match resolve_topic(&event.topic) {
            Ok(registration) => registration
                .upcast(event.schema_version, value)
                .map(Payload::Upcast)
                .map_err(|e| Unreadable::Domain(e.to_string())),
            Err(_) if self.knows_types => Err(Unreadable::UnknownTopic),
            Err(_) => Ok(Payload::Json(value)),
        }
    }
}
