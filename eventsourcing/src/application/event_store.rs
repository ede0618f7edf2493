//! The event store: domain events in, domain events out, over any recorder.

use std::sync::Arc;

use uuid::Uuid;

use super::error::ApplicationError;
use super::snapshots::{SnapshotCounters, SnapshotPolicy, SnapshotStats};
use crate::domain::{DomainEvent, EventEnvelope};
use crate::persistence::{
    EventQuery, Limits, Mapper, MemoryRecorder, NotificationQuery, PersistenceError,
    SnapshotRecorder, Storage, StoredEvent, StoredSnapshot, StreamAppend, Tracking,
};
use crate::trace::Timed;

/// What a commit wrote ([`EventStore::commit`], [`Application::save`](crate::Application::save)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The global positions of the new events, in save order (none on a store without a
    /// global log).
    pub positions: Vec<u64>,
    /// The automatic snapshots written after the events committed: stream and version.
    pub snapshots: Vec<(Uuid, u64)>,
}

impl Saved {
    /// The highest position written, if any event was written.
    #[must_use]
    pub fn last_position(&self) -> Option<u64> {
        self.positions.last().copied()
    }
}

/// Appends domain events to a recorder and reads them back, through a [`Mapper`]; keeps
/// snapshots when it has a snapshot recorder.
///
/// Cheap to clone: clones share the recorders and the snapshot counters.
#[derive(Clone)]
pub struct EventStore {
    recorder: Arc<dyn Storage>,
    snapshots: Option<Arc<dyn SnapshotRecorder>>,
    mapper: Mapper,
    policy: SnapshotPolicy,
    counters: Arc<SnapshotCounters>,
    limits: Limits,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("mapper", &self.mapper)
            .field("snapshots", &self.snapshots.is_some())
            .field("policy", &self.policy)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// An event store over `recorder`, storing plain JSON, without snapshots.
    pub fn new(recorder: Arc<dyn Storage>) -> Self {
        Self::with_mapper(recorder, Mapper::new())
    }

    /// An event store with a custom mapper (transcoders), without snapshots.
    pub fn with_mapper(recorder: Arc<dyn Storage>, mapper: Mapper) -> Self {
        Self {
            recorder,
            snapshots: None,
            mapper,
            policy: SnapshotPolicy::default(),
            counters: Arc::default(),
            limits: Limits::default(),
        }
    }

    /// An event store over a [`Storage`] (what a store URL opens): events and snapshots in
    /// one backend, so deleting a stream deletes its snapshots in the same transaction.
    pub fn with_storage(storage: Arc<dyn Storage>, mapper: Mapper) -> Self {
        let snapshots: Arc<dyn SnapshotRecorder> = storage.clone();
        Self::with_mapper(storage, mapper).with_snapshot_recorder(snapshots)
    }

    /// Keeps snapshots in `snapshots` (possibly another backend than the events').
    #[must_use]
    pub fn with_snapshot_recorder(mut self, snapshots: Arc<dyn SnapshotRecorder>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Takes automatic snapshots according to `policy`.
    #[must_use]
    pub fn with_snapshot_policy(mut self, policy: SnapshotPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Enforces `limits` (event size, batch size) on every append, before any I/O.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits enforced on every append.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The one door every write of events goes through: application saves, process
    /// applications (with their tracking record), the persistence subscriber and
    /// [`EventStore::append`]. It checks the [`Limits`] before any I/O, appends the batch (and
    /// the tracking record, in the same transaction), then writes the automatic `snapshots`
    /// the caller encoded for the committed state; a snapshot that fails to write only costs
    /// a longer replay later, so it is counted, not returned.
    ///
    /// # Errors
    /// [`PersistenceError::LimitExceeded`] (nothing written, no I/O), or the recorder's
    /// errors (conflicts, [`PersistenceError::AlreadyTracked`], ...): nothing written.
    pub fn commit(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
        snapshots: Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<Saved, PersistenceError> {
        let span = Timed::new(tracing::debug_span!(
            "append",
            streams = batch.len(),
            events = tracing::field::Empty,
            stream_id = tracing::field::Empty,
            expected_version = tracing::field::Empty,
            tracked = tracking.map(|t| t.position),
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        if span.enabled() {
            span.record(
                "events",
                batch.iter().map(|a| a.events.len()).sum::<usize>(),
            );
            if let [one] = batch {
                span.record("stream_id", one.stream_id.as_str());
                span.record("expected_version", one.expected_version);
            }
        }
        let positions = span.in_scope(|| {
            self.limits.check(batch)?;
            self.recorder.append(batch, tracking)
        });
        span.finish(&positions);
        Ok(Saved {
            positions: positions?,
            snapshots: self.put_snapshots(snapshots),
        })
    }

    /// Writes the automatic snapshots of a committed batch; failures are counted.
    fn put_snapshots(&self, snapshots: Vec<(Uuid, StoredSnapshot)>) -> Vec<(Uuid, u64)> {
        let Some(recorder) = &self.snapshots else {
            return Vec::new();
        };
        let mut written = Vec::with_capacity(snapshots.len());
        for (id, snapshot) in snapshots {
            let span = Timed::new(tracing::debug_span!(
                "snapshot",
                stream_id = %id,
                version = snapshot.version,
                automatic = true,
                duration_us = tracing::field::Empty,
                error = tracing::field::Empty,
            ));
            let result = span.in_scope(|| recorder.put_snapshot(&snapshot));
            span.finish(&result);
            match result {
                Ok(()) => {
                    self.counters.taken();
                    written.push((id, snapshot.version));
                }
                Err(error) => {
                    // Handled here (counted, not returned): recorded here, once.
                    tracing::warn!(stream_id = %id, version = snapshot.version, %error,
                        "automatic snapshot not written: loads replay more events");
                    self.counters.write_failure();
                }
            }
        }
        written
    }

    /// [`EventStore::commit`] of a batch without tracking or snapshots; the positions.
    ///
    /// # Errors
    /// As [`EventStore::commit`].
    pub fn append_stored(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, ApplicationError> {
        Ok(self.commit(batch, None, Vec::new())?.positions)
    }

    /// An event store in memory, with snapshots.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::with_storage(Arc::new(MemoryRecorder::new()), Mapper::new())
    }

    /// The snapshot recorder, if this store keeps snapshots.
    #[must_use]
    pub fn snapshot_recorder(&self) -> Option<&Arc<dyn SnapshotRecorder>> {
        self.snapshots.as_ref()
    }

    /// When automatic snapshots are taken.
    #[must_use]
    pub fn snapshot_policy(&self) -> &SnapshotPolicy {
        &self.policy
    }

    /// Counters of snapshots taken, used, and ignored because they could not be decoded.
    #[must_use]
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.counters.stats()
    }

    pub(crate) fn counters(&self) -> &SnapshotCounters {
        &self.counters
    }

    /// The recorder.
    #[must_use]
    pub fn recorder(&self) -> &Arc<dyn Storage> {
        &self.recorder
    }

    /// The mapper.
    #[must_use]
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Encodes envelopes into per-stream appends, each expecting the version before its first
    /// event. Envelopes of one stream must be contiguous and in version order.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn to_appends<E: DomainEvent>(
        &self,
        envelopes: &[EventEnvelope<E>],
    ) -> Result<Vec<StreamAppend>, ApplicationError> {
        let mut appends: Vec<StreamAppend> = Vec::new();
        let mut last_stream = None;
        for envelope in envelopes {
            // The stream id is formatted once for each run of a stream's envelopes.
            match appends.last_mut() {
                Some(last) if last_stream == Some(envelope.stream_id) => {
                    let stored = self.mapper.to_stored_in(&last.stream_id, envelope)?;
                    last.events.push(stored);
                }
                _ => {
                    let stored = self.mapper.to_stored(envelope)?;
                    last_stream = Some(envelope.stream_id);
                    appends.push(StreamAppend {
                        stream_id: stored.stream_id.clone(),
                        expected_version: envelope.version.saturating_sub(1),
                        events: vec![stored],
                    });
                }
            }
        }
        Ok(appends)
    }

    /// Appends domain events atomically, each stream expecting the version before its first
    /// event: the seed's event store "append". Returns the positions assigned.
    ///
    /// # Errors
    /// [`ApplicationError::Conflict`] when a stream moved on (nothing written), a broken
    /// [`Limits`] (nothing written, no I/O), encoding or backend errors.
    pub fn append<E: DomainEvent>(
        &self,
        envelopes: &[EventEnvelope<E>],
    ) -> Result<Vec<u64>, ApplicationError> {
        let appends = self.to_appends(envelopes)?;
        self.append_stored(&appends)
    }

    /// The events of a stream, oldest first.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn events<E: DomainEvent>(
        &self,
        stream_id: Uuid,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        self.select(stream_id, &EventQuery::all())
    }

    /// The events of a stream in a version range: e.g. every event from a given version
    /// (`EventQuery::all().from_version(5)`), or up to one.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn select<E: DomainEvent>(
        &self,
        stream_id: Uuid,
        query: &EventQuery,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        self.recorder
            .select_events(&stream_id.to_string(), query)?
            .into_iter()
            .map(|stored| self.decode(stored))
            .collect()
    }

    /// Every event with the given topic, in global order, from a position, at most `limit`.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn events_by_topic<E: DomainEvent>(
        &self,
        topic: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        let query = NotificationQuery::new(from_position, limit).topics([topic]);
        self.recorder
            .select_notifications(&query)?
            .into_iter()
            .map(|stored| self.decode(stored))
            .collect()
    }

    /// One event by its event id.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn event_by_id<E: DomainEvent>(
        &self,
        event_id: Uuid,
    ) -> Result<Option<EventEnvelope<E>>, ApplicationError> {
        self.recorder
            .event_by_id(event_id)?
            .map(|stored| self.decode(stored))
            .transpose()
    }

    /// Deletes every event of a stream, and its snapshots; returns how many events were
    /// deleted. A [`Storage`] deletes both in one transaction; a separate snapshot recorder
    /// has its snapshots deleted right after the events.
    ///
    /// # Errors
    /// Backend errors.
    pub fn delete_stream(&self, stream_id: Uuid) -> Result<u64, ApplicationError> {
        let stream_id = stream_id.to_string();
        let deleted = self.recorder.delete_stream(&stream_id)?;
        if let Some(snapshots) = &self.snapshots {
            snapshots.delete_snapshots(&stream_id)?;
        }
        Ok(deleted)
    }

    /// Decodes one stored event.
    ///
    /// # Errors
    /// Decoding errors naming the stream, version and position.
    pub fn decode<E: DomainEvent>(
        &self,
        stored: StoredEvent,
    ) -> Result<EventEnvelope<E>, ApplicationError> {
        Ok(self.mapper.to_envelope(stored)?)
    }
}
