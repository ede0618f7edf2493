//! `Application`: saves aggregates atomically, loads them, and exposes the notification log.

use std::sync::Arc;

use uuid::Uuid;

use super::config::StoreUrl;
use super::error::ApplicationError;
use super::event_store::EventStore;
use super::notification_log::NotificationLog;
use super::repository::Repository;
use super::snapshots::{encode_snapshot, SnapshotPolicy};
use crate::domain::{validate_registry, Aggregate, Entity};
use crate::persistence::{
    Limits, Mapper, MemoryRecorder, ProcessRecorder, SnapshotRecorder, Storage, StoredEvent,
    StoredSnapshot, StreamAppend, Transcoder,
};
use crate::system::EventBus;

/// An event-sourced application: an event store, repositories over it, a notification log and
/// an in-process bus on which saved events are published after they commit.
///
/// Dropping the application closes its store (connections are released when the last clone
/// of the store goes).
#[derive(Debug, Clone)]
pub struct Application {
    store: EventStore,
    bus: EventBus,
}

/// What a successful [`Application::save`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The global positions of the new events, in save order.
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

impl Application {
    /// An application keeping its events (and snapshots) in memory.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::with_store(EventStore::with_storage(
            Arc::new(MemoryRecorder::new()),
            Mapper::new(),
        ))
    }

    /// Opens the store named by `EVENTSOURCING_URL`, or the default SQLite file
    /// (`eventsourcing.db` in the working directory) when the variable is unset, with the
    /// compression and encryption configured in the environment
    /// (see [`ApplicationBuilder::transcoders_from_env`]).
    ///
    /// # Errors
    /// Configuration or backend errors, or a registry problem (duplicate topic, missing
    /// upcaster) found by [`validate_registry`].
    pub fn open_default() -> Result<Self, ApplicationError> {
        Self::builder()
            .url_from_env()?
            .transcoders_from_env()?
            .build()
    }

    /// Opens the store named by `url`: `memory:`, `sqlite://PATH` or `postgres://...`, with
    /// the compression and encryption configured in the environment.
    ///
    /// # Errors
    /// As [`Application::open_default`].
    pub fn open(url: &str) -> Result<Self, ApplicationError> {
        Self::builder().url(url)?.transcoders_from_env()?.build()
    }

    /// A builder for custom configurations (transcoders, a given recorder, a shared bus).
    #[must_use]
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::default()
    }

    /// An application over an existing event store.
    #[must_use]
    pub fn with_store(store: EventStore) -> Self {
        Self {
            store,
            bus: EventBus::new(),
        }
    }

    /// Saves the pending events of one or more aggregates in one atomic append:
    /// `app.save(&mut dog)`, `app.save((&mut from, &mut to))` or `app.save(vec![&mut a, &mut b])`.
    ///
    /// Each aggregate's stream must still be at the version it was loaded at; otherwise the
    /// save fails with [`ApplicationError::Conflict`], nothing is written and the aggregates
    /// keep their pending events. On success the pending events are cleared and published on
    /// the bus, in order.
    ///
    /// # Errors
    /// Conflict, a broken [`Limits`] (checked before any I/O), encoding or backend errors;
    /// [`ApplicationError::Publish`] when the events were
    /// committed but a bus subscriber failed.
    pub fn save<S: Saveable>(&self, mut aggregates: S) -> Result<Saved, ApplicationError> {
        let mut appends = Vec::new();
        aggregates.collect_appends(self.store.mapper(), &mut appends)?;
        if appends.is_empty() {
            return Ok(Saved::default());
        }
        let mut snapshots = Vec::new();
        if self.store.snapshot_recorder().is_some() {
            aggregates.collect_snapshots(&self.store, &mut snapshots)?;
        }
        let positions = self.store.append_stored(&appends)?;
        aggregates.mark_saved();
        let snapshots = self.put_snapshots(snapshots);
        if self.bus.has_subscribers() {
            let mut published: Vec<StoredEvent> =
                appends.into_iter().flat_map(|a| a.events).collect();
            for (event, position) in published.iter_mut().zip(&positions) {
                event.position = Some(*position);
            }
            self.bus
                .publish(&published)
                .map_err(|source| ApplicationError::Publish {
                    last_position: positions.last().copied().unwrap_or_default(),
                    source,
                })?;
        }
        Ok(Saved {
            positions,
            snapshots,
        })
    }

    /// Writes the automatic snapshots of a committed save; a failure only costs a longer
    /// replay later, so it is counted, not returned.
    fn put_snapshots(&self, snapshots: Vec<(Uuid, StoredSnapshot)>) -> Vec<(Uuid, u64)> {
        let Some(recorder) = self.store.snapshot_recorder() else {
            return Vec::new();
        };
        let mut written = Vec::with_capacity(snapshots.len());
        for (id, snapshot) in snapshots {
            match recorder.put_snapshot(&snapshot) {
                Ok(()) => {
                    self.store.counters().taken();
                    written.push((id, snapshot.version));
                }
                Err(_) => self.store.counters().write_failure(),
            }
        }
        written
    }

    /// Takes a snapshot of an aggregate at its latest version (`at` = `None`) or at version
    /// `at`; returns the version snapshotted. Shortcut for
    /// `self.repository::<T>().take_snapshot(id, at)`.
    ///
    /// # Errors
    /// As [`Repository::take_snapshot`].
    pub fn take_snapshot<T: Entity>(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<u64, ApplicationError> {
        self.repository::<T>().take_snapshot(id, at)
    }

    /// A repository for entities of type `T`.
    #[must_use]
    pub fn repository<T: Entity>(&self) -> Repository<'_, T> {
        Repository::new(&self.store)
    }

    /// Shortcut for `self.repository::<T>().get(id)`.
    ///
    /// # Errors
    /// As [`Repository::get`].
    pub fn get<T: Entity>(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        self.repository().get(id)
    }

    /// The notification log: every event in global order.
    #[must_use]
    pub fn notification_log(&self) -> NotificationLog<'_> {
        NotificationLog::new(&self.store)
    }

    /// The event store.
    #[must_use]
    pub fn event_store(&self) -> &EventStore {
        &self.store
    }

    /// The bus on which saved events are published after commit.
    #[must_use]
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Closes the application; the same as dropping it, spelled out.
    pub fn close(self) {}
}

/// Whether an entity type has a snapshot codec.
type HasCodec = fn() -> bool;

/// Builds an [`Application`].
#[derive(Default)]
pub struct ApplicationBuilder {
    url: Option<StoreUrl>,
    recorder: Option<Arc<dyn ProcessRecorder>>,
    snapshots: Option<Arc<dyn SnapshotRecorder>>,
    mapper: Mapper,
    bus: Option<EventBus>,
    policy: SnapshotPolicy,
    /// Entities given an interval, with a check that they have a snapshot codec.
    snapshotted: Vec<(&'static str, HasCodec)>,
    limits: Limits,
}

impl std::fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("url", &self.url)
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl ApplicationBuilder {
    /// Stores events at `url` (`memory:`, `sqlite://PATH`, `postgres://...`).
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unsupported URL.
    pub fn url(mut self, url: &str) -> Result<Self, ApplicationError> {
        self.url = Some(url.parse()?);
        Ok(self)
    }

    /// Stores events at the URL in `EVENTSOURCING_URL`, or the default SQLite file.
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unsupported URL.
    pub fn url_from_env(mut self) -> Result<Self, ApplicationError> {
        self.url = Some(StoreUrl::from_env()?);
        Ok(self)
    }

    /// Stores events in an event-only recorder built by the caller; snapshots are kept only if
    /// [`ApplicationBuilder::snapshot_recorder`] is given too, after this call (this call
    /// forgets any snapshot store given before).
    #[must_use]
    pub fn recorder(mut self, recorder: Arc<dyn ProcessRecorder>) -> Self {
        self.recorder = Some(recorder);
        self.snapshots = None;
        self
    }

    /// Stores events and snapshots in a [`Storage`] built by the caller (what
    /// [`StoreUrl::open_recorder`] returns).
    #[must_use]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        let snapshots: Arc<dyn SnapshotRecorder> = storage.clone();
        self.recorder = Some(storage);
        self.snapshots = Some(snapshots);
        self
    }

    /// Keeps snapshots in `snapshots`, beside an event-only [`ApplicationBuilder::recorder`].
    #[must_use]
    pub fn snapshot_recorder(mut self, snapshots: Arc<dyn SnapshotRecorder>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Snapshots entities of type `T` automatically every `events` events (0: never), which
    /// overrides the entity's own [`SnapshotCodec::every`](crate::domain::SnapshotCodec).
    /// [`ApplicationBuilder::build`] fails if `T` has no snapshot codec.
    #[must_use]
    pub fn snapshot_every<T: Entity>(mut self, events: u64) -> Self {
        self.policy = self.policy.every::<T>(events);
        self.snapshotted
            .push((T::NAME, || T::snapshot_codec().is_some()));
        self
    }

    /// Snapshots every entity type that has a snapshot codec but no interval of its own every
    /// `events` events (0: never).
    #[must_use]
    pub fn snapshot_default_every(mut self, events: u64) -> Self {
        self.policy = self.policy.default_every(events);
        self
    }

    /// Adds the transcoders configured in the environment: compression when
    /// `EVENTSOURCING_COMPRESSION` is `zlib` (or `deflate`), then AES-256-GCM encryption when
    /// `EVENTSOURCING_CIPHER_KEY` holds a key (32 bytes, base64 or 64 hex digits).
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unknown compression name, a malformed key, or a
    /// setting whose cargo feature (`compression`, `encryption`) is not compiled in.
    pub fn transcoders_from_env(self) -> Result<Self, ApplicationError> {
        self.transcoders_from(|name| std::env::var(name).ok())
    }

    /// As [`ApplicationBuilder::transcoders_from_env`], reading settings through `lookup`
    /// (for configuration that is not in the process environment).
    ///
    /// # Errors
    /// As [`ApplicationBuilder::transcoders_from_env`].
    pub fn transcoders_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ApplicationError> {
        use crate::persistence::transcoders::{CIPHER_KEY_ENV, COMPRESSION_ENV};
        let setting = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(compression) = setting(COMPRESSION_ENV) {
            match compression.trim().to_ascii_lowercase().as_str() {
                "none" | "off" => {}
                "zlib" | "deflate" => self = self.compressed()?,
                other => {
                    return Err(ApplicationError::Config(format!(
                        "{COMPRESSION_ENV}=`{other}`: expected `zlib` or `none`"
                    )))
                }
            }
        }
        if let Some(key) = setting(CIPHER_KEY_ENV) {
            self = self.encrypted_with(&key)?;
        }
        Ok(self)
    }

    #[cfg(feature = "compression")]
    fn compressed(self) -> Result<Self, ApplicationError> {
        Ok(self.transcoder(Arc::new(crate::persistence::Compression::new())))
    }

    #[cfg(not(feature = "compression"))]
    #[allow(clippy::unused_self)]
    fn compressed(self) -> Result<Self, ApplicationError> {
        Err(ApplicationError::Config(
            "compression is configured, but this build lacks the `compression` feature".into(),
        ))
    }

    #[cfg(feature = "encryption")]
    fn encrypted_with(self, key: &str) -> Result<Self, ApplicationError> {
        let key = crate::persistence::CipherKey::parse(key).map_err(|e| match e {
            crate::persistence::PersistenceError::Config(reason) => {
                ApplicationError::Config(reason)
            }
            other => ApplicationError::from(other),
        })?;
        Ok(self.transcoder(Arc::new(crate::persistence::Encryption::new(&key))))
    }

    #[cfg(not(feature = "encryption"))]
    #[allow(clippy::unused_self)]
    fn encrypted_with(self, _key: &str) -> Result<Self, ApplicationError> {
        Err(ApplicationError::Config(
            "a cipher key is configured, but this build lacks the `encryption` feature".into(),
        ))
    }

    /// Adds a payload transcoder (compression, encryption), applied in the order added.
    #[must_use]
    pub fn transcoder(mut self, transcoder: Arc<dyn Transcoder>) -> Self {
        self.mapper = self.mapper.with_transcoder(transcoder);
        self
    }

    /// Enforces `limits` on every save (default: [`Limits::default`], 1 MiB a payload and
    /// 10,000 events a save).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Publishes saved events on this bus instead of a private one.
    #[must_use]
    pub fn bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Validates the topic registry and opens the store.
    ///
    /// # Errors
    /// Registry, configuration or backend errors.
    pub fn build(self) -> Result<Application, ApplicationError> {
        validate_registry()?;
        if let Some((entity, _)) = self.snapshotted.iter().find(|(_, has_codec)| !has_codec()) {
            return Err(ApplicationError::NoSnapshotCodec { entity });
        }
        let store = match (self.recorder, self.url) {
            (Some(recorder), _) => {
                let store = EventStore::with_mapper(recorder, self.mapper);
                match self.snapshots {
                    Some(snapshots) => store.with_snapshot_recorder(snapshots),
                    None => store,
                }
            }
            (None, url) => {
                let url = match url {
                    Some(url) => url,
                    None => StoreUrl::from_env()?,
                };
                let store = EventStore::with_storage(url.open_recorder()?, self.mapper);
                match self.snapshots {
                    Some(snapshots) => store.with_snapshot_recorder(snapshots),
                    None => store,
                }
            }
        };
        Ok(Application {
            store: store
                .with_snapshot_policy(self.policy)
                .with_limits(self.limits),
            bus: self.bus.unwrap_or_default(),
        })
    }
}

/// One or more aggregates that [`Application::save`] writes in one atomic append.
///
/// Implemented for `&mut Aggregate<T>`, tuples of up to eight saveables, `Vec`s, arrays and
/// mutable slices of them.
pub trait Saveable {
    /// Encodes the pending events as appends expecting each aggregate's saved version.
    ///
    /// # Errors
    /// Encoding errors.
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError>;

    /// Clears the pending events after a successful append.
    fn mark_saved(&mut self);

    /// Encodes the snapshots this save makes due under the store's
    /// [`SnapshotPolicy`], to be written once the events have committed. The default takes
    /// none.
    ///
    /// # Errors
    /// Encoding errors.
    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        let _ = (store, out);
        Ok(())
    }
}

impl<T: Entity> Saveable for &mut Aggregate<T> {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        let pending = self.pending_events();
        if pending.is_empty() {
            return Ok(());
        }
        let events = pending
            .iter()
            .map(|e| mapper.to_stored(e))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(StreamAppend {
            stream_id: self.id().to_string(),
            expected_version: self.saved_version(),
            events,
        });
        Ok(())
    }

    fn mark_saved(&mut self) {
        drop(self.collect_events());
    }

    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        if self.pending_events().is_empty()
            || !store
                .snapshot_policy()
                .is_due::<T>(self.saved_version(), self.version())
        {
            return Ok(());
        }
        if let Some(codec) = T::snapshot_codec() {
            out.push((self.id(), encode_snapshot(self, &codec, store.mapper())?));
        }
        Ok(())
    }
}

impl<S: Saveable> Saveable for Vec<S> {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        self.iter().try_for_each(|s| s.collect_appends(mapper, out))
    }
    fn mark_saved(&mut self) {
        self.iter_mut().for_each(Saveable::mark_saved);
    }
    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        self.iter()
            .try_for_each(|s| s.collect_snapshots(store, out))
    }
}

impl<S: Saveable, const N: usize> Saveable for [S; N] {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        self.iter().try_for_each(|s| s.collect_appends(mapper, out))
    }
    fn mark_saved(&mut self) {
        self.iter_mut().for_each(Saveable::mark_saved);
    }
    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        self.iter()
            .try_for_each(|s| s.collect_snapshots(store, out))
    }
}

impl<S: Saveable> Saveable for &mut [S] {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        self.iter().try_for_each(|s| s.collect_appends(mapper, out))
    }
    fn mark_saved(&mut self) {
        self.iter_mut().for_each(Saveable::mark_saved);
    }
    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        self.iter()
            .try_for_each(|s| s.collect_snapshots(store, out))
    }
}

macro_rules! saveable_tuple {
    ($($name:ident),+) => {
        impl<$($name: Saveable),+> Saveable for ($($name,)+) {
            #[allow(non_snake_case)]
            fn collect_appends(&self, mapper: &Mapper, out: &mut Vec<StreamAppend>) -> Result<(), ApplicationError> {
                let ($($name,)+) = self;
                $($name.collect_appends(mapper, out)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn mark_saved(&mut self) {
                let ($($name,)+) = self;
                $($name.mark_saved();)+
            }
            #[allow(non_snake_case)]
            fn collect_snapshots(&self, store: &EventStore, out: &mut Vec<(Uuid, StoredSnapshot)>) -> Result<(), ApplicationError> {
                let ($($name,)+) = self;
                $($name.collect_snapshots(store, out)?;)+
                Ok(())
            }
        }
    };
}

saveable_tuple!(A);
saveable_tuple!(A, B);
saveable_tuple!(A, B, C);
saveable_tuple!(A, B, C, D);
saveable_tuple!(A, B, C, D, E);
saveable_tuple!(A, B, C, D, E, F);
saveable_tuple!(A, B, C, D, E, F, G);
saveable_tuple!(A, B, C, D, E, F, G, H);
