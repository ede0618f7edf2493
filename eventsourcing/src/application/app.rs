//! `Application`: saves aggregates atomically, loads them, and exposes the notification log.

use std::sync::Arc;

use uuid::Uuid;

use super::config::StoreUrl;
use super::error::ApplicationError;
use super::event_store::EventStore;
use super::notification_log::NotificationLog;
use super::repository::Repository;
use crate::domain::{validate_registry, Aggregate, Entity};
use crate::persistence::{
    Mapper, MemoryRecorder, ProcessRecorder, StoredEvent, StreamAppend, Transcoder,
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
}

impl Saved {
    /// The highest position written, if any event was written.
    #[must_use]
    pub fn last_position(&self) -> Option<u64> {
        self.positions.last().copied()
    }
}

impl Application {
    /// An application keeping its events in memory.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::with_store(EventStore::new(Arc::new(MemoryRecorder::new())))
    }

    /// Opens the store named by `EVENTSOURCING_URL`, or the default SQLite file
    /// (`eventsourcing.db` in the working directory) when the variable is unset.
    ///
    /// # Errors
    /// Configuration or backend errors, or a registry problem (duplicate topic, missing
    /// upcaster) found by [`validate_registry`].
    pub fn open_default() -> Result<Self, ApplicationError> {
        Self::builder().url_from_env()?.build()
    }

    /// Opens the store named by `url`: `memory:`, `sqlite://PATH` or `postgres://...`.
    ///
    /// # Errors
    /// As [`Application::open_default`].
    pub fn open(url: &str) -> Result<Self, ApplicationError> {
        Self::builder().url(url)?.build()
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
    /// Conflict, encoding or backend errors; [`ApplicationError::Publish`] when the events were
    /// committed but a bus subscriber failed.
    pub fn save<S: Saveable>(&self, mut aggregates: S) -> Result<Saved, ApplicationError> {
        let mut appends = Vec::new();
        aggregates.collect_appends(self.store.mapper(), &mut appends)?;
        if appends.is_empty() {
            return Ok(Saved::default());
        }
        let positions = self.store.recorder().append(&appends)?;
        aggregates.mark_saved();
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
        Ok(Saved { positions })
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

/// Builds an [`Application`].
#[derive(Default)]
pub struct ApplicationBuilder {
    url: Option<StoreUrl>,
    recorder: Option<Arc<dyn ProcessRecorder>>,
    mapper: Mapper,
    bus: Option<EventBus>,
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

    /// Stores events in a recorder built by the caller.
    #[must_use]
    pub fn recorder(mut self, recorder: Arc<dyn ProcessRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Adds a payload transcoder (compression, encryption), applied in the order added.
    #[must_use]
    pub fn transcoder(mut self, transcoder: Arc<dyn Transcoder>) -> Self {
        self.mapper = self.mapper.with_transcoder(transcoder);
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
        let recorder = match (self.recorder, self.url) {
            (Some(recorder), _) => recorder,
            (None, Some(url)) => url.open_recorder()?,
            (None, None) => StoreUrl::from_env()?.open_recorder()?,
        };
        Ok(Application {
            store: EventStore::with_mapper(recorder, self.mapper),
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
