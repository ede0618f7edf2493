//! The mapper: turns domain events into stored events and back, through optional transcoders
//! (compression, encryption) applied to the payload bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::error::PersistenceError;
use super::stored_event::{StoredEvent, StoredEventRef};
use crate::domain::{DomainEvent, EventEnvelope, Metadata};

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
///
/// With `Mapper::with_metadata_encryption` (feature `encryption`), the values of the user
/// metadata map are encrypted too; see there for what stays visible.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    transcoders: Vec<Arc<dyn Transcoder>>,
    /// Encrypts user metadata values, when set.
    #[cfg(feature = "encryption")]
    metadata_cipher: Option<Arc<super::Encryption>>,
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

    /// Also encrypts the value of every user metadata entry ([`Metadata::user`]) of the
    /// events this mapper stores, with AES-256-GCM under `cipher`'s key. Each value is stored
    /// as [`ENCRYPTED_METADATA_PREFIX`](super::ENCRYPTED_METADATA_PREFIX) followed by the
    /// base64 of the ciphertext, with the stream id, the version, the event id and the entry's
    /// key as associated data: a value copied onto another event or under another key does
    /// not decrypt there. Values stored before (plain) stay readable as they are.
    ///
    /// What stays visible in the store: stream ids, versions, topics, positions, timestamps,
    /// event ids, causation and correlation ids, and the keys of the user map (and, roughly,
    /// each value's length). Payloads and snapshot states are encrypted by the
    /// [`Encryption`](super::Encryption) transcoder, which is a separate choice.
    ///
    /// Reading a value encrypted under a key the mapper does not have (or with a mapper
    /// that does not encrypt metadata) is [`PersistenceError::Transcode`].
    #[cfg(feature = "encryption")]
    #[must_use]
    pub fn with_metadata_encryption(mut self, cipher: Arc<super::Encryption>) -> Self {
        self.metadata_cipher = Some(cipher);
        self
    }

    /// Whether user metadata values are encrypted.
    #[must_use]
    pub fn encrypts_metadata(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.metadata_cipher.is_some();
        #[cfg(not(feature = "encryption"))]
        false
    }

    /// The stored form of the value of user metadata entry `key` of the event `event_id` at
    /// `version` of `stream_id`: encrypted with `Mapper::with_metadata_encryption`, the
    /// value itself otherwise.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`] when encryption fails (no randomness).
    pub fn encode_metadata_value(
        &self,
        stream_id: &str,
        version: u64,
        event_id: Uuid,
        key: &str,
        value: &str,
    ) -> Result<String, PersistenceError> {
        #[cfg(feature = "encryption")]
        if let Some(cipher) = &self.metadata_cipher {
            let entry = super::transcoders::MetadataEntry {
                stream_id,
                version,
                event_id,
                key,
            };
            return cipher.encrypt_metadata_value(&entry, value);
        }
        let _ = (stream_id, version, event_id, key);
        Ok(value.to_owned())
    }

    /// Encrypts the user metadata values of an event about to be stored at `version` of
    /// `stream_id`, in place (nothing to do without `Mapper::with_metadata_encryption`).
    ///
    /// # Errors
    /// As [`Mapper::encode_metadata_value`].
    pub fn encode_metadata(
        &self,
        stream_id: &str,
        version: u64,
        metadata: &mut Metadata,
    ) -> Result<(), PersistenceError> {
        if !self.encrypts_metadata() {
            return Ok(());
        }
        let event_id = metadata.event_id;
        for (key, value) in &mut metadata.user {
            *value = self.encode_metadata_value(stream_id, version, event_id, key, value)?;
        }
        Ok(())
    }

    /// The metadata of a stored event with its user values decrypted (encrypted values are
    /// recognised by their prefix; plain ones, as stored before metadata encryption, are
    /// returned as they are).
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`] for a value encrypted under another key, tampered
    /// with, copied from another event or entry, or when this mapper has no metadata key.
    pub fn decode_metadata(&self, stored: &StoredEvent) -> Result<Metadata, PersistenceError> {
        self.decode_metadata_of(&stored.stream_id, stored.version, stored.metadata.clone())
    }

    /// [`Mapper::decode_metadata`] of metadata taken out of its row.
    fn decode_metadata_of(
        &self,
        stream_id: &str,
        version: u64,
        metadata: Metadata,
    ) -> Result<Metadata, PersistenceError> {
        #[cfg(feature = "encryption")]
        return self.decrypt_metadata(stream_id, version, metadata);
        #[cfg(not(feature = "encryption"))]
        {
            let _ = (stream_id, version);
            Ok(metadata)
        }
    }

    /// Decrypts the encrypted user values of `metadata`.
    #[cfg(feature = "encryption")]
    fn decrypt_metadata(
        &self,
        stream_id: &str,
        version: u64,
        mut metadata: Metadata,
    ) -> Result<Metadata, PersistenceError> {
        let event_id = metadata.event_id;
        for (key, value) in &mut metadata.user {
            let Some(sealed) = super::transcoders::sealed_metadata_value(value) else {
                continue;
            };
            let failed = |reason: String| PersistenceError::Transcode {
                reason: format!(
                    "user metadata `{}` of the event at version {version} of stream `{}`: \
                     {reason}",
                    key.escape_debug(),
                    stream_id.escape_debug()
                ),
            };
            let Some(cipher) = &self.metadata_cipher else {
                return Err(failed(format!(
                    "encrypted under key id {}, and no metadata key is configured \
                     (Mapper::with_metadata_encryption)",
                    super::transcoders::metadata_key_id(&sealed)
                )));
            };
            let entry = super::transcoders::MetadataEntry {
                stream_id,
                version,
                event_id,
                key,
            };
            match cipher.decrypt_metadata_value(&entry, value) {
                Some(Ok(plain)) => *value = plain,
                Some(Err(PersistenceError::Transcode { reason })) => return Err(failed(reason)),
                Some(Err(other)) => return Err(other),
                None => {}
            }
        }
        Ok(metadata)
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
        self.to_stored_in(&envelope.stream_id.to_string(), envelope)
    }

    /// [`Mapper::to_stored`] with the envelope's stream id already formatted (by the caller,
    /// from `envelope.stream_id`), so that a stream's events format it once, not once an event.
    pub(crate) fn to_stored_in<E: DomainEvent>(
        &self,
        stream_id: &str,
        envelope: &EventEnvelope<E>,
    ) -> Result<StoredEvent, PersistenceError> {
        let stream_id = stream_id.to_owned();
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
        let mut metadata = envelope.metadata.clone();
        self.encode_metadata(&stream_id, envelope.version, &mut metadata)?;
        Ok(StoredEvent {
            stream_id,
            version: envelope.version,
            topic: registration.topic.to_owned(),
            schema_version: registration.version,
            payload,
            metadata,
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
        let stream_id = stream_uuid(&stored)?;
        let event = self.decode_event::<E>(&stored)?;
        let metadata =
            self.decode_metadata_of(&stored.stream_id, stored.version, stored.metadata)?;
        Ok(EventEnvelope {
            stream_id,
            version: stored.version,
            metadata,
            position: stored.position,
            event,
        })
    }

    /// [`Mapper::to_envelope`] of a borrowed stored event: only the metadata is copied (the
    /// envelope owns it); the payload is decoded where it lies.
    ///
    /// # Errors
    /// As [`Mapper::to_envelope`].
    pub fn to_envelope_ref<E: DomainEvent>(
        &self,
        stored: &StoredEvent,
    ) -> Result<EventEnvelope<E>, PersistenceError> {
        let stream_id = stream_uuid(stored)?;
        let event = self.decode_event::<E>(stored)?;
        let metadata =
            self.decode_metadata_of(&stored.stream_id, stored.version, stored.metadata.clone())?;
        Ok(EventEnvelope {
            stream_id,
            version: stored.version,
            metadata,
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

/// The stream id of a stored event as the UUID an envelope carries.
fn stream_uuid(stored: &StoredEvent) -> Result<Uuid, PersistenceError> {
    Uuid::parse_str(&stored.stream_id).map_err(|_| PersistenceError::Corrupt {
        detail: format!(
            "stream id `{}` of the event at version {} is not a UUID",
            stored.stream_id.escape_debug(),
            stored.version
        ),
    })
}
