//! Repositories: load aggregates by replaying their events (the event player).

use std::marker::PhantomData;
use std::ops::ControlFlow;

use uuid::Uuid;

use super::error::ApplicationError;
use super::event_store::EventStore;
use super::snapshots::{decode_snapshot, encode_snapshot, LoadReport};
use crate::domain::{Aggregate, Entity, EventEnvelope};
use crate::persistence::{EventQuery, StoredEvent, StoredEventRef};
use crate::trace::{metrics, Timed};

/// Loads aggregates of one entity type from an event store.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Note { text: String }
/// # #[entity] impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
/// let app = Application::in_memory()?;
/// let mut note = Note::write("hello".into());
/// app.save(&mut note)?;
/// let repository = app.repository::<Note>();
/// assert_eq!(repository.get(note.id())?.text, "hello");
/// assert!(repository.contains(note.id())?);
/// # Ok::<(), eventsourcing::ApplicationError>(())
/// ```
pub struct Repository<'a, T> {
    store: &'a EventStore,
    entity: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Repository<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("entity", &std::any::type_name::<T>())
            .finish()
    }
}

impl<'a, T: Entity> Repository<'a, T> {
    /// A repository reading from `store`.
    #[must_use]
    pub fn new(store: &'a EventStore) -> Self {
        Self {
            store,
            entity: PhantomData,
        }
    }

    /// The aggregate with this id, at its latest version: from its newest snapshot, if any,
    /// plus the events after it.
    ///
    /// # Errors
    /// [`ApplicationError::NotFound`], [`ApplicationError::Discarded`], or a decoding or
    /// replay error naming the event that failed.
    pub fn get(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        let (aggregate, _) = self.load(id, None)?;
        if aggregate.is_discarded() {
            return Err(ApplicationError::Discarded { id });
        }
        Ok(aggregate)
    }

    /// The aggregate as it was at `version` (time travel): from the newest snapshot at or
    /// below `version`, plus the events after it up to `version`. Discarded aggregates are
    /// returned too: the past is still readable.
    ///
    /// # Errors
    /// [`ApplicationError::NotFound`] when the aggregate has no events up to that version;
    /// [`ApplicationError::VersionNotFound`] when `version` is past its last version (rather
    /// than silently the latest state).
    pub fn get_at(&self, id: Uuid, version: u64) -> Result<Aggregate<T>, ApplicationError> {
        let (aggregate, _) = self.load(id, Some(version))?;
        if aggregate.version() < version {
            return Err(ApplicationError::VersionNotFound {
                id,
                requested: version,
                latest: aggregate.version(),
            });
        }
        Ok(aggregate)
    }

    /// Whether any event is stored for this id.
    ///
    /// # Errors
    /// Backend errors.
    pub fn contains(&self, id: Uuid) -> Result<bool, ApplicationError> {
        let first = self
            .store
            .recorder()
            .select_events(&id.to_string(), &EventQuery::all().limit(1))?;
        Ok(!first.is_empty())
    }

    /// Loads the aggregate at its latest version (`at` = `None`) or at version `at`, and
    /// reports whether a snapshot was used and how many events were replayed. Discarded
    /// aggregates are returned as they are.
    ///
    /// When the store keeps snapshots and `T` has a [`SnapshotCodec`](crate::domain::SnapshotCodec),
    /// the newest snapshot at or below `at` is decoded and only the later events are read. A
    /// snapshot that cannot be read or decoded is ignored: every event is replayed instead,
    /// [`LoadReport::snapshot_error`] says why and
    /// [`SnapshotStats::fallbacks`](super::SnapshotStats::fallbacks) counts it. Only the
    /// events decide whether an aggregate can be loaded.
    ///
    /// # Errors
    /// [`ApplicationError::NotFound`], or a backend, decoding or replay error.
    pub fn load(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<(Aggregate<T>, LoadReport), ApplicationError> {
        let span = Timed::new(tracing::info_span!(
            "load",
            entity = T::NAME,
            stream_id = %id,
            at,
            version = tracing::field::Empty,
            events = tracing::field::Empty,
            snapshot_version = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.load_traced(id, at));
        let elapsed = span.finish(&result);
        if let Ok((aggregate, report)) = &result {
            metrics::loaded(T::NAME, elapsed, report.snapshot_version.is_some());
            span.record("version", aggregate.version());
            span.record("events", report.events_replayed);
            if let Some(version) = report.snapshot_version {
                span.record("snapshot_version", version);
            }
            if let Some(error) = &report.snapshot_error {
                // Handled here (every event replayed instead): recorded here, once.
                tracing::warn!(parent: span.span_ref(), stream_id = %id, error = %error,
                    "snapshot ignored: every event replayed");
            }
        }
        result
    }

    fn load_traced(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<(Aggregate<T>, LoadReport), ApplicationError> {
        let stream_id = id.to_string();
        let mut report = LoadReport::default();
        let mut start = None;
        if let (Some(snapshots), Some(codec)) =
            (self.store.snapshot_recorder(), T::snapshot_codec())
        {
            let found = snapshots
                .latest_snapshot(&stream_id, at)
                .and_then(|stored| {
                    stored
                        .map(|s| decode_snapshot(&s, &codec, self.store.mapper()))
                        .transpose()
                });
            match found {
                Ok(Some(aggregate)) => {
                    report.snapshot_version = Some(aggregate.version());
                    self.store.counters().loaded();
                    start = Some(aggregate);
                }
                Ok(None) => {}
                Err(error) => {
                    self.store.counters().fallback();
                    report.snapshot_error = Some(error.to_string());
                }
            }
        }
        // The snapshot's own event is read again and must still be there, with the
        // timestamp the snapshot recorded: a snapshot written after its stream was deleted
        // (a `take_snapshot` racing `delete_stream`), one of an older stream that had the
        // same id, or one above the stream's version is ignored, and every event replayed.
        let mut from_snapshot = start.as_ref().map(|s| (s.version(), s.modified_on()));
        let (mut aggregate, mut replayed) = (start, 0u64);
        loop {
            let mut query = EventQuery::all();
            if let Some((version, _)) = from_snapshot {
                query = query.from_version(version);
            }
            if let Some(at) = at {
                query = query.to_version(at);
            }
            let mut check = from_snapshot;
            let (mut stale, mut failure) = (false, None);
            // Each event is decoded and applied straight from the backend's row: no
            // intermediate `Vec<StoredEvent>`, no copies of stream ids, topics or payloads.
            self.store
                .recorder()
                .for_each_event(&stream_id, &query, &mut |event| {
                    if let Some((version, modified)) = check.take() {
                        stale = event.version != version || event.metadata.timestamp != modified;
                        return if stale {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        };
                    }
                    match self.replay_ref(id, aggregate.take(), event) {
                        Ok(next) => {
                            aggregate = Some(next);
                            replayed += 1;
                            ControlFlow::Continue(())
                        }
                        Err(error) => {
                            failure = Some(error);
                            ControlFlow::Break(())
                        }
                    }
                })?;
            if let Some(error) = failure {
                return Err(error);
            }
            // No event where the snapshot's should be: the stream is gone or shorter.
            stale |= check.is_some();
            let Some((version, _)) = from_snapshot.filter(|_| stale) else {
                break;
            };
            self.store.counters().fallback();
            report.snapshot_error = Some(format!(
                "the snapshot at version {version} does not match the stream (deleted, \
                 re-created or shorter): every event was replayed instead"
            ));
            report.snapshot_version = None;
            (from_snapshot, aggregate, replayed) = (None, None, 0);
        }
        report.events_replayed = replayed;
        let aggregate = aggregate.ok_or(ApplicationError::NotFound { id })?;
        Ok((aggregate, report))
    }

    /// Takes a snapshot of the aggregate at its latest version (`at` = `None`) or at version
    /// `at`, and returns the version snapshotted. Loading uses existing snapshots, so
    /// snapshotting a long history again costs only the events since the previous snapshot.
    ///
    /// # Errors
    /// [`ApplicationError::NoSnapshotStore`], [`ApplicationError::NoSnapshotCodec`], a load
    /// error, or a backend error writing the snapshot.
    pub fn take_snapshot(&self, id: Uuid, at: Option<u64>) -> Result<u64, ApplicationError> {
        let span = Timed::new(tracing::info_span!(
            "snapshot",
            entity = T::NAME,
            stream_id = %id,
            at,
            version = tracing::field::Empty,
            automatic = false,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| {
            let (aggregate, _) = self.load(id, at)?;
            self.snapshot(&aggregate)
        });
        span.finish(&result);
        if let Ok(version) = &result {
            span.record("version", *version);
        }
        result
    }

    /// Stores a snapshot of `aggregate` at its version; returns that version. Pending events
    /// must be saved first, since a snapshot describes stored history.
    ///
    /// # Errors
    /// [`ApplicationError::NoSnapshotStore`], [`ApplicationError::NoSnapshotCodec`],
    /// [`ApplicationError::UnsavedEvents`], encoding or backend errors.
    pub fn snapshot(&self, aggregate: &Aggregate<T>) -> Result<u64, ApplicationError> {
        let snapshots = self
            .store
            .snapshot_recorder()
            .ok_or(ApplicationError::NoSnapshotStore)?;
        let codec =
            T::snapshot_codec().ok_or(ApplicationError::NoSnapshotCodec { entity: T::NAME })?;
        if !aggregate.pending_events().is_empty() {
            return Err(ApplicationError::UnsavedEvents {
                id: aggregate.id(),
                pending: aggregate.pending_events().len(),
            });
        }
        let stored = encode_snapshot(aggregate, &codec, self.store.mapper())?;
        snapshots.put_snapshot(&stored)?;
        self.store.counters().taken();
        Ok(stored.version)
    }

    /// Applies stored events (oldest first) on top of `start`: the event player.
    ///
    /// # Errors
    /// Decoding or replay errors naming the event that failed.
    pub fn replay(
        &self,
        id: Uuid,
        start: Option<Aggregate<T>>,
        stored: Vec<StoredEvent>,
    ) -> Result<Option<Aggregate<T>>, ApplicationError> {
        let mapper = self.store.mapper();
        let mut aggregate = start;
        for event in stored {
            let decoded = mapper.decode_event::<T::Event>(&event)?;
            let envelope = EventEnvelope {
                stream_id: id,
                version: event.version,
                metadata: event.metadata,
                position: event.position,
                event: decoded,
            };
            aggregate = Some(Aggregate::replay_one(aggregate, envelope)?);
        }
        Ok(aggregate)
    }

    /// Applies one borrowed stored event on top of `aggregate` (`None` starts a new one).
    fn replay_ref(
        &self,
        id: Uuid,
        aggregate: Option<Aggregate<T>>,
        event: StoredEventRef<'_>,
    ) -> Result<Aggregate<T>, ApplicationError> {
        let decoded = self.store.mapper().decode_event_ref::<T::Event>(&event)?;
        let envelope = EventEnvelope {
            stream_id: id,
            version: event.version,
            metadata: event.metadata,
            position: event.position,
            event: decoded,
        };
        Ok(Aggregate::replay_one(aggregate, envelope)?)
    }
}

/// The seed's abstract event-sourced repository, for the explicit style: implement
/// `event_store` and get `get`, `get_at` and `contains`.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Note { text: String }
/// # #[entity] impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
/// struct NoteRepository { event_store: EventStore }
///
/// impl EventSourcedRepository for NoteRepository {
///     type Entity = Note;
///     fn event_store(&self) -> &EventStore { &self.event_store }
/// }
///
/// let repository = NoteRepository { event_store: EventStore::in_memory() };
/// let mut note = Note::write("hi".into());
/// repository.event_store().append(&note.collect_events())?;
/// assert_eq!(repository.get(note.id())?.text, "hi");
/// # Ok::<(), eventsourcing::ApplicationError>(())
/// ```
pub trait EventSourcedRepository {
    /// The entity type this repository loads.
    type Entity: Entity;

    /// The event store to read from.
    fn event_store(&self) -> &EventStore;

    /// See [`Repository::get`].
    ///
    /// # Errors
    /// As [`Repository::get`].
    fn get(&self, id: Uuid) -> Result<Aggregate<Self::Entity>, ApplicationError> {
        Repository::new(self.event_store()).get(id)
    }

    /// See [`Repository::get_at`].
    ///
    /// # Errors
    /// As [`Repository::get_at`].
    fn get_at(&self, id: Uuid, version: u64) -> Result<Aggregate<Self::Entity>, ApplicationError> {
        Repository::new(self.event_store()).get_at(id, version)
    }

    /// See [`Repository::take_snapshot`].
    ///
    /// # Errors
    /// As [`Repository::take_snapshot`].
    fn take_snapshot(&self, id: Uuid, at: Option<u64>) -> Result<u64, ApplicationError> {
        Repository::<Self::Entity>::new(self.event_store()).take_snapshot(id, at)
    }

    /// See [`Repository::contains`].
    ///
    /// # Errors
    /// As [`Repository::contains`].
    fn contains(&self, id: Uuid) -> Result<bool, ApplicationError> {
        Repository::<Self::Entity>::new(self.event_store()).contains(id)
    }
}
