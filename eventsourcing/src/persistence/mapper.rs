//! The mapper: turns domain events into stored events and back, through optional transcoders
//! (compression, encryption) applied to the payload bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::error::PersistenceError;
use super::stored_event::{StoredEvent, StoredEventRef};
use crate::domain::{DomainEvent, EventEnvelope};

/// What a payload belongs to: the row it is stored in. Authenticated encryption binds it to
/// the ciphertext, so that a payload copied onto another stream, version, topic or from an
/// event into a snapshot does not decode there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadContext<'a> {
    /// An event's payload or a snapshot's state.
    pub kind: PayloadKind,
    /// The stream.
    pub stream_id: &'a str,
    /// The event's (or the snapshot's) version.
    pub version: u64,
    /// The event's stored topic (or the snapshot's entity name).
    pub topic: &'a str,
}

/// Which kind of payload a [`PayloadContext`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadKind {
    /// An event's payload.
    Event,
    /// A snapshot's state.
    Snapshot,
}

impl PayloadContext<'_> {
    /// An event's context.
    #[must_use]
    pub fn event<'a>(stream_id: &'a str, version: u64, topic: &'a str) -> PayloadContext<'a> {
        PayloadContext {
            kind: PayloadKind::Event,
            stream_id,
            version,
            topic,
        }
    }

    /// A snapshot's context.
    #[must_use]
    pub fn snapshot<'a>(stream_id: &'a str, version: u64, topic: &'a str) -> PayloadContext<'a> {
        PayloadContext {
            kind: PayloadKind::Snapshot,
            stream_id,
            version,
            topic,
        }
    }

    /// An unambiguous byte encoding (kind, then length-prefixed stream id, the version, then
    /// the length-prefixed topic), e.g. as associated data.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + self.stream_id.len() + self.topic.len() + 8);
        out.push(match self.kind {
            PayloadKind::Event => b'e',
            PayloadKind::Snapshot => b's',
        });
        out.extend_from_slice(&(self.stream_id.len() as u64).to_be_bytes());
        out.extend_from_slice(self.stream_id.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&(self.topic.len() as u64).to_be_bytes());
        out.extend_from_slice(self.topic.as_bytes());
        out
    }
}

/// A reversible transformation of payload bytes, such as compression or encryption.
///
/// The mapper calls [`Transcoder::encode_for`] and [`Transcoder::decode_for`], which know the
/// row the payload belongs to; by default they forward to `encode` and `decode`, which is right
/// for a transcoder that does not authenticate (compression).
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

    /// [`Transcoder::encode`] of the payload of `context`'s row.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`].
    fn encode_for(
        &self,
        data: Vec<u8>,
        context: &PayloadContext<'_>,
    ) -> Result<Vec<u8>, PersistenceError> {
        let _ = context;
        self.encode(data)
    }

    /// [`Transcoder::decode`] of the payload of `context`'s row; a transcoder that binds the
    /// context must fail when it differs from the one the payload was encoded for.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`].
    fn decode_for(
        &self,
        data: Vec<u8>,
        context: &PayloadContext<'_>,
    ) -> Result<Vec<u8>, PersistenceError> {
        let _ = context;
        self.decode(data)
    }
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

    /// Applies the transcoders to the JSON bytes of `context`'s row.
    ///
    /// # Errors
    /// A transcoder's error.
    pub fn encode_payload(
        &self,
        json: Vec<u8>,
        context: &PayloadContext<'_>,
    ) -> Result<Vec<u8>, PersistenceError> {
        self.transcoders
            .iter()
            .try_fold(json, |data, t| t.encode_for(data, context))
    }

    /// Reverses the transcoders on the payload of `context`'s row, giving JSON bytes
    /// (borrowed when there is nothing to undo).
    ///
    /// # Errors
    /// A transcoder's error, e.g. a wrong key, or a payload that belongs to another row.
    pub fn decode_payload<'a>(
        &self,
        stored: &'a [u8],
        context: &PayloadContext<'_>,
    ) -> Result<Cow<'a, [u8]>, PersistenceError> {
        if self.transcoders.is_empty() {
            return Ok(Cow::Borrowed(stored));
        }
        self.transcoders
            .iter()
            .rev()
            .try_fold(stored.to_vec(), |data, t| t.decode_for(data, context))
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
        let context = PayloadContext::event(&stream_id, envelope.version, registration.topic);
        let payload = self.encode_payload(json, &context)?;
        Ok(StoredEvent {
            stream_id,
            version: envelope.version,
            topic: registration.topic.to_owned(),
            schema_version: registration.version,
            payload,
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
        let json =
            self.decode_payload(payload, &PayloadContext::event(stream_id, version, topic))?;
        E::decode_stored(topic, schema_version, &json).map_err(|source| PersistenceError::Decode {
            stream_id: stream_id.to_owned(),
            version,
            position,
            topic: topic.to_owned(),
            source,
        })
    }
}
