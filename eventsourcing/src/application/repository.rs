//! Repositories: load aggregates by replaying their events (the event player).

use std::marker::PhantomData;

use uuid::Uuid;

use super::error::ApplicationError;
use super::event_store::EventStore;
use crate::domain::{Aggregate, Entity, EventEnvelope};
use crate::persistence::{EventQuery, StoredEvent};

/// Loads aggregates of one entity type from an event store.
///
/// ```
/// # use eventsourcing::prelude::*;
/// # #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Note { text: String }
/// # #[entity] impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
/// let app = Application::in_memory();
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

    /// The aggregate with this id, at its latest version.
    ///
    /// # Errors
    /// [`ApplicationError::NotFound`], [`ApplicationError::Discarded`], or a decoding or
    /// replay error naming the event that failed.
    pub fn get(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        let aggregate = self.load(id, &EventQuery::all())?;
        if aggregate.is_discarded() {
            return Err(ApplicationError::Discarded { id });
        }
        Ok(aggregate)
    }

    /// The aggregate as it was at `version` (time travel). Discarded aggregates are returned
    /// too: the past is still readable.
    ///
    /// # Errors
    /// [`ApplicationError::NotFound`] when the aggregate has no events up to that version.
    pub fn get_at(&self, id: Uuid, version: u64) -> Result<Aggregate<T>, ApplicationError> {
        self.load(id, &EventQuery::all().to_version(version))
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

    fn load(&self, id: Uuid, query: &EventQuery) -> Result<Aggregate<T>, ApplicationError> {
        let stored = self
            .store
            .recorder()
            .select_events(&id.to_string(), query)?;
        self.replay(id, None, stored)?
            .ok_or(ApplicationError::NotFound { id })
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

    /// See [`Repository::contains`].
    ///
    /// # Errors
    /// As [`Repository::contains`].
    fn contains(&self, id: Uuid) -> Result<bool, ApplicationError> {
        Repository::<Self::Entity>::new(self.event_store()).contains(id)
    }
}
