//! Snapshots: when they are taken, how they are encoded, and what loading from them did.
//!
//! A snapshot is an entity's state at one version, encoded by the entity's
//! [`SnapshotCodec`] (JSON with its own schema version and upcasters), then passed through
//! the same transcoders as event payloads (compression, encryption). Repositories load the
//! newest snapshot at or below the version asked for and replay only the later events.
//!
//! A snapshot that cannot be decoded (a missing upcaster, a changed codec, a wrong key) never
//! makes an aggregate unloadable: the repository replays every event instead, counts the
//! fallback in [`SnapshotStats::fallbacks`] and says so in [`LoadReport::snapshot_error`].

use std::any::TypeId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ApplicationError;
use crate::domain::{Aggregate, Entity, SnapshotCodec};
use crate::persistence::{Mapper, PayloadContext, PersistenceError, StoredSnapshot};

/// When snapshots are taken automatically, per entity type.
///
/// The interval of an entity type is, in order: the one set here with
/// [`SnapshotPolicy::every`] (0 turns automatic snapshots off for that type), else the
/// entity's own [`SnapshotCodec::every`], else [`SnapshotPolicy::default_every`]. Entities
/// without a snapshot codec are never snapshotted. A save takes a snapshot of an aggregate
/// when its new version crosses a multiple of the interval: with an interval of 100, saving
/// versions 95 to 103 snapshots the state at version 103.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPolicy {
    default_every: Option<u64>,
    per_entity: BTreeMap<TypeId, u64>,
}

impl SnapshotPolicy {
    /// No automatic snapshots beyond those the entities ask for.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Snapshots entities of type `T` every `events` events (0: never automatically).
    #[must_use]
    pub fn every<T: Entity>(mut self, events: u64) -> Self {
        self.per_entity.insert(TypeId::of::<T>(), events);
        self
    }

    /// Snapshots every entity type that has a codec and no interval of its own every `events`
    /// events (0: never).
    #[must_use]
    pub fn default_every(mut self, events: u64) -> Self {
        self.default_every = (events > 0).then_some(events);
        self
    }

    /// The automatic interval for `T`, if any.
    #[must_use]
    pub fn interval<T: Entity>(&self) -> Option<u64> {
        let codec = T::snapshot_codec()?;
        match self.per_entity.get(&TypeId::of::<T>()) {
            Some(&every) => (every > 0).then_some(every),
            None => codec.every.or(self.default_every),
        }
    }

    /// Whether saving an aggregate from `saved_version` up to `version` crosses a multiple of
    /// `T`'s interval.
    #[must_use]
    pub fn is_due<T: Entity>(&self, saved_version: u64, version: u64) -> bool {
        self.interval::<T>()
            .is_some_and(|every| version / every > saved_version / every)
    }
}

/// Counters of snapshot activity since the event store was made (shared by its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotStats {
    /// Snapshots written (explicitly or automatically).
    pub taken: u64,
    /// Aggregates loaded from a snapshot.
    pub loaded: u64,
    /// Snapshots that could not be decoded, so that every event was replayed instead.
    pub fallbacks: u64,
    /// Automatic snapshots that failed to be written after their events committed (the save
    /// itself succeeded).
    pub write_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SnapshotCounters {
    taken: AtomicU64,
    loaded: AtomicU64,
    fallbacks: AtomicU64,
    write_failures: AtomicU64,
}

impl SnapshotCounters {
    pub(crate) fn taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn loaded(&self) {
        self.loaded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn write_failure(&self) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stats(&self) -> SnapshotStats {
        SnapshotStats {
            taken: self.taken.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
        }
    }
}

/// What loading one aggregate did: whether a snapshot was used and how many events were
/// replayed. Returned by [`Repository::load`](super::Repository::load).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// The version of the snapshot the aggregate started from, if one was used.
    pub snapshot_version: Option<u64>,
    /// How many events were read and applied.
    pub events_replayed: u64,
    /// Why a stored snapshot was ignored (the load fell back to a full replay), if it was.
    pub snapshot_error: Option<String>,
}

/// Encodes an aggregate's state as a snapshot at its current version, through the mapper's
/// transcoders.
///
/// # Errors
/// [`ApplicationError::Domain`] when the state cannot be encoded, or a transcoder's error.
pub fn encode_snapshot<T: Entity>(
    aggregate: &Aggregate<T>,
    codec: &SnapshotCodec<T>,
    mapper: &Mapper,
) -> Result<StoredSnapshot, ApplicationError> {
    let json = codec.encode(T::NAME, aggregate.state())?;
    let stream_id = aggregate.id().to_string();
    let context = PayloadContext::snapshot(&stream_id, aggregate.version(), T::NAME);
    let state = mapper.encode_payload(json, &context)?;
    Ok(StoredSnapshot {
        stream_id,
        version: aggregate.version(),
        topic: T::NAME.to_owned(),
        schema_version: codec.version,
        state,
        created_on: aggregate.created_on(),
        modified_on: aggregate.modified_on(),
    })
}

/// Decodes a stored snapshot into an aggregate: transcoders reversed, the state upcast from
/// its stored schema version, then decoded.
///
/// # Errors
/// [`PersistenceError::Corrupt`] for a stream id that is not a UUID, a transcoder's error, or
/// [`PersistenceError::Decode`] (position `None`, topic the entity name) when the state cannot
/// be upcast or decoded.
pub fn decode_snapshot<T: Entity>(
    stored: &StoredSnapshot,
    codec: &SnapshotCodec<T>,
    mapper: &Mapper,
) -> Result<Aggregate<T>, PersistenceError> {
    let id = uuid::Uuid::parse_str(&stored.stream_id).map_err(|_| PersistenceError::Corrupt {
        detail: format!(
            "stream id `{}` of the snapshot at version {} is not a UUID",
            stored.stream_id.escape_debug(),
            stored.version
        ),
    })?;
    let context = PayloadContext::snapshot(&stored.stream_id, stored.version, &stored.topic);
    let json = mapper.decode_payload(&stored.state, &context)?;
    let state = codec
        .decode(T::NAME, stored.schema_version, &json)
        .map_err(|source| PersistenceError::Decode {
            stream_id: stored.stream_id.clone(),
            version: stored.version,
            position: None,
            topic: stored.topic.clone(),
            source,
        })?;
    Ok(Aggregate::from_snapshot(
        id,
        stored.version,
        stored.created_on,
        stored.modified_on,
        state,
    ))
}
