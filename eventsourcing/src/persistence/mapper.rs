//! The mapper: turns domain events into stored events and back, through optional transcoders
//! (compression, encryption) applied to the payload bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::error::PersistenceError;
use super::stored_event::{StoredEvent, StoredEventRef};
use crate::domain::{DomainEvent, EventEnvelope};

/// A reversible transformation of payload bytes, such as compression or encryption.
pub trait Transcoder: Send + Sync + fmt::Debug {
    /// Transforms bytes on the way into storage.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`].
    fn encode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError>;

    /// Reverses [`Transcoder::encode`]; must fail (not return garbage) on bytes it did not
    /// produce, e.g. when decrypting with the wrong key.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`].
    fn decode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError>;
}

/// Serialises domain events to [`StoredEvent`]s (JSON payloads, then each transcoder in
/// order) and recreates them (transcoders in reverse, then upcasting and decoding).
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    transcoders: Vec<Arc<dyn Transcoder>>,
}

impl Mapper {
    /// A mapper that stores plain JSON.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a transcoder; encoding applies transcoders in the order they were added.
    #[must_use]
    pub fn with_transcoder(mut self, transcoder: Arc<dyn Transcoder>) -> Self {
        self.transcoders.push(transcoder);
        self
    }

    /// Whether payloads are stored as plain JSON.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.transcoders.is_empty()
    }

    /// Applies the transcoders to JSON bytes.
    ///
    /// # Errors
    /// A transcoder's error.
    pub fn encode_payload(&self, json: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        self.transcoders
            .iter()
            .try_fold(json, |data, t| t.encode(data))
    }

    /// Reverses the transcoders, giving JSON bytes (borrowed when there is nothing to undo).
    ///
    /// # Errors
    /// A transcoder's error, e.g. a wrong key.
    pub fn decode_payload<'a>(&self, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, PersistenceError> {
        if self.transcoders.is_empty() {
            return Ok(Cow::Borrowed(stored));
        }
        self.transcoders
            .iter()
            .rev()
            .try_fold(stored.to_vec(), |data, t| t.decode(data))
            .map(Cow::Owned)
    }

    /// Serialises a domain event: the seed's "function to serialize a domain event to a stored
    /// event".
    ///
    /// # Errors
    /// [`PersistenceError::Encode`] or a transcoder's error.
    pub fn to_stored<E: DomainEvent>(
        &self,
        envelope: &EventEnvelope<E>,
    ) -> Result<StoredEvent, PersistenceError> {
        let stream_id = envelope.stream_id.to_string();
        let json = envelope
            .event
            .encode()
            .map_err(|source| PersistenceError::Encode {
                stream_id: stream_id.clone(),
                source,
            })?;
        let registration = envelope.event.registration();
        Ok(StoredEvent {
            stream_id,
            version: envelope.version,
            topic: registration.topic.to_owned(),
            schema_version: registration.version,
            payload: self.encode_payload(json)?,
            metadata: envelope.metadata.clone(),
            position: envelope.position,
        })
    }

    /// Recreates a domain event: the seed's "function to recreate a domain event from a stored
    /// event". Old schema versions are upcast and aliases resolved on the way.
    ///
    /// # Errors
    /// [`PersistenceError::Decode`] naming the stream, version and position, or a transcoder's
    /// error.
    pub fn to_envelope<E: DomainEvent>(
        &self,
        stored: StoredEvent,
    ) -> Result<EventEnvelope<E>, PersistenceError> {
        let stream_id =
            Uuid::parse_str(&stored.stream_id).map_err(|_| PersistenceError::Corrupt {
                detail: format!(
                    "stream id `{}` of the event at version {} is not a UUID",
                    stored.stream_id.escape_debug(),
                    stored.version
                ),
            })?;
        let event = self.decode_event::<E>(&stored)?;
        Ok(EventEnvelope {
            stream_id,
            version: stored.version,
            metadata: stored.metadata,
            position: stored.position,
            event,
        })
    }

    /// Decodes only the event of a stored event.
    ///
    /// # Errors
    /// As [`Mapper::to_envelope`].
    pub fn decode_event<E: DomainEvent>(
        &self,
        stored: &StoredEvent,
    ) -> Result<E, PersistenceError> {
        self.decode_parts(
            &stored.stream_id,
            stored.version,
            stored.position,
            &stored.topic,
            stored.schema_version,
            &stored.payload,
        )
    }

    /// Decodes only the event of a borrowed stored event.
    ///
    /// # Errors
    /// As [`Mapper::to_envelope`].
    pub fn decode_event_ref<E: DomainEvent>(
        &self,
        stored: &StoredEventRef<'_>,
    ) -> Result<E, PersistenceError> {
        self.decode_parts(
            stored.stream_id,
            stored.version,
            stored.position,
            stored.topic,
            stored.schema_version,
            stored.payload,
        )
    }

    fn decode_parts<E: DomainEvent>(
        &self,
        stream_id: &str,
        version: u64,
        position: Option<u64>,
        topic: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<E, PersistenceError> {
        let json = self.decode_payload(payload)?;
        E::decode_stored(topic, schema_version, &json).map_err(|source| PersistenceError::Decode {
            stream_id: stream_id.to_owned(),
            version,
            position,
            topic: topic.to_owned(),
            source,
        })
    }
}
