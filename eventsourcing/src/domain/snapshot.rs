//! How an entity's state is written to and read from snapshots.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::DomainError;
use super::topic::Upcaster;

/// The snapshot settings and codec of an entity: JSON by default, with its own schema version
/// and upcasters (independent of the events'), and an optional automatic interval.
///
/// `#[entity]` builds one for every entity whose state implements `Serialize` and
/// `Deserialize` (opt out with `#[entity(snapshots = false)]`).
pub struct SnapshotCodec<T> {
    /// The schema version of the state written by this code.
    pub version: u32,
    /// Steps from older state versions to the next.
    pub upcasters: &'static [Upcaster],
    /// Take a snapshot automatically whenever a save crosses a multiple of this many events.
    pub every: Option<u64>,
    encode: fn(&T) -> Result<Vec<u8>, serde_json::Error>,
    decode: fn(&[u8]) -> Result<T, serde_json::Error>,
}

impl<T> Clone for SnapshotCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SnapshotCodec<T> {}

impl<T> std::fmt::Debug for SnapshotCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCodec")
            .field("version", &self.version)
            .field("upcasters", &self.upcasters)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> SnapshotCodec<T> {
    /// JSON snapshots at version 1, no upcasters, no automatic interval.
    #[must_use]
    pub const fn json() -> Self {
        Self {
            version: 1,
            upcasters: &[],
            every: None,
            encode: |state| serde_json::to_vec(state),
            decode: |bytes| serde_json::from_slice(bytes),
        }
    }
}

impl<T> SnapshotCodec<T> {
    /// Sets the state's schema version.
    #[must_use]
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets the upcasters for older state versions.
    #[must_use]
    pub const fn upcasters(mut self, upcasters: &'static [Upcaster]) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Snapshots automatically every `events` events.
    #[must_use]
    pub const fn every(mut self, events: u64) -> Self {
        self.every = Some(events);
        self
    }

    /// Encodes the state.
    ///
    /// # Errors
    /// [`DomainError::Encode`] when serialisation fails.
    pub fn encode(&self, entity: &'static str, state: &T) -> Result<Vec<u8>, DomainError> {
        (self.encode)(state).map_err(|source| DomainError::Encode {
            topic: entity.to_owned(),
            source,
        })
    }

    /// Decodes a state stored at `stored_version`, upcasting it when older.
    ///
    /// # Errors
    /// Missing or failing upcasters, a version newer than the code, or a payload of the wrong
    /// shape.
    pub fn decode(
        &self,
        entity: &'static str,
        stored_version: u32,
        bytes: &[u8],
    ) -> Result<T, DomainError> {
        let payload = |source| DomainError::Payload {
            topic: entity.to_owned(),
            source,
        };
        if stored_version == self.version {
            return (self.decode)(bytes).map_err(payload);
        }
        let registration = super::topic::TopicRegistration {
            topic: entity,
            entity,
            event: "snapshot",
            type_name: std::any::type_name::<T>(),
            version: self.version,
            aliases: &[],
            upcasters: self.upcasters,
            creates: false,
        };
        let value = serde_json::from_slice(bytes).map_err(payload)?;
        let value = registration.upcast(stored_version, value)?;
        // Back to bytes, so that the state's `Deserialize` is compiled for one deserializer.
        let bytes = serde_json::to_vec(&value).map_err(payload)?;
        (self.decode)(&bytes).map_err(payload)
    }
}
