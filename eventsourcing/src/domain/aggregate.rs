//! `Aggregate<T>`: an entity's state with its identity, version, timestamps and the events
//! recorded since it was last saved.

use std::ops::Deref;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use uuid::Uuid;

use super::entity::Entity;
use super::error::DomainError;
use super::event::{DomainEvent, EventEnvelope};
use super::metadata::{EventContext, Metadata, Timestamp};

/// An entity with its identity and history.
///
/// The state is readable through `Deref<Target = T>`, but there is no `DerefMut`: the state
/// changes only by recording events, so the history is always complete.
#[derive(Debug, Clone)]
pub struct Aggregate<T: Entity> {
    id: Uuid,
    version: u64,
    created_on: Timestamp,
    modified_on: Timestamp,
    state: T,
    pending: Vec<EventEnvelope<T::Event>>,
    context: EventContext,
    /// Where the fallible commands running on this aggregate began, innermost last. Empty
    /// outside commands.
    rollback: Vec<RollbackPoint>,
    /// The state when the outermost of them began, copied at its first recorded event: one
    /// copy per outermost command, none for a command that refuses before recording. An
    /// inner command's starting state is this copy with the pending events recorded between
    /// the two starts applied again.
    rollback_state: Option<Box<T>>,
    /// Set while a mutator changes the state in place, and left set if it panics: the state
    /// may then be half changed, so nothing more is recorded or saved.
    poisoned: bool,
}

impl<T: Entity> Aggregate<T> {
    /// Creates a new entity with a fresh id (UUID v7) from its creation event, which becomes
    /// the first pending event.
    ///
    /// # Errors
    /// Whatever the mutator returns, e.g. [`DomainError::NotCreated`] for an event that does not
    /// create the entity.
    pub fn create(event: T::Event) -> Result<Self, DomainError> {
        Self::create_with_id(Uuid::now_v7(), event)
    }

    /// As [`Aggregate::create`], with a given id.
    ///
    /// # Errors
    /// As [`Aggregate::create`].
    pub fn create_with_id(id: Uuid, event: T::Event) -> Result<Self, DomainError> {
        Self::create_in_context(id, event, EventContext::default())
    }

    /// As [`Aggregate::create_with_id`], with causation, correlation and user values for the
    /// events this aggregate records.
    ///
    /// # Errors
    /// As [`Aggregate::create`].
    pub fn create_in_context(
        id: Uuid,
        event: T::Event,
        context: EventContext,
    ) -> Result<Self, DomainError> {
        let metadata = Metadata::with_context(&context);
        let state = T::mutate(None, event.clone())?;
        Ok(Self {
            id,
            version: 1,
            created_on: metadata.timestamp,
            modified_on: metadata.timestamp,
            state,
            pending: vec![EventEnvelope {
                stream_id: id,
                version: 1,
                metadata,
                position: None,
                event,
            }],
            context,
            rollback: Vec::new(),
            rollback_state: None,
            poisoned: false,
        })
    }

    /// Records an event: applies it to the state and keeps it as pending until saved.
    ///
    /// The state changes in place ([`Entity::apply`]), so recording costs the size of the
    /// event, not of the state. If the mutator refuses, nothing changes. If it panics, a
    /// fallible command or [`Aggregate::atomically`] around the call rolls the aggregate back
    /// to where it started; outside them the aggregate is poisoned (the panic continues to
    /// unwind, and every later `record` and save fails with [`DomainError::Poisoned`]).
    ///
    /// # Errors
    /// Whatever the mutator returns, and [`DomainError::Poisoned`]; nothing is recorded then.
    pub fn record(&mut self, event: T::Event) -> Result<(), DomainError> {
        self.check_not_poisoned()?;
        if !self.rollback.is_empty() && self.rollback_state.is_none() {
            // The first event since the outermost fallible command began: the one copy of the
            // state that its rollback, and that of every command inside it, needs.
            self.rollback_state = Some(Box::new(self.state.clone()));
        }
        self.poisoned = true;
        let applied = self.state.apply(event.clone());
        self.poisoned = false;
        applied?;
        let metadata = Metadata::with_context(&self.context);
        self.version += 1;
        self.modified_on = metadata.timestamp;
        self.pending.push(EventEnvelope {
            stream_id: self.id,
            version: self.version,
            metadata,
            position: None,
            event,
        });
        Ok(())
    }

    /// `Err(DomainError::Poisoned)` once a mutator has panicked outside a rollback point.
    ///
    /// # Errors
    /// [`DomainError::Poisoned`].
    pub fn check_not_poisoned(&self) -> Result<(), DomainError> {
        if self.poisoned {
            return Err(DomainError::Poisoned {
                entity: T::NAME,
                id: self.id,
            });
        }
        Ok(())
    }

    /// Starts a fallible command: [`Aggregate::end_command`] with `failed = true` returns to
    /// here. The state is copied later, by the first [`Aggregate::record`] of the outermost
    /// command, and only if there is one. Generated commands returning a `Result` and
    /// [`Aggregate::atomically`] call this.
    pub(crate) fn begin_command(&mut self) {
        self.rollback.push(RollbackPoint {
            version: self.version,
            modified_on: self.modified_on,
            pending: self.pending.len(),
        });
    }

    /// Ends the innermost command begun with [`Aggregate::begin_command`]: when it failed
    /// (an `Err`, or a panic), drops the events it recorded and returns the state, version and
    /// timestamps to where it began.
    pub(crate) fn end_command(&mut self, failed: bool) {
        let Some(point) = self.rollback.pop() else {
            return;
        };
        let outermost = self.rollback.is_empty();
        if failed {
            // No copy means no event since the outermost command began: the state is as it
            // was then, and so as it was when this one began.
            if let Some(copy) = &self.rollback_state {
                let state = if outermost {
                    self.rollback_state.take().map(|copy| *copy)
                } else {
                    let copy = T::clone(copy);
                    self.replayed_state(copy, point.pending)
                };
                if let Some(state) = state {
                    self.state = state;
                    // A mutator that panicked changed only the state, now replaced.
                    self.poisoned = false;
                }
            }
            self.version = point.version;
            self.modified_on = point.modified_on;
            self.pending.truncate(point.pending);
        }
        if outermost {
            self.rollback_state = None;
        }
    }

    /// The state when an inner command began: the outermost command's copy with the pending
    /// events recorded between the two starts applied again; `None` (and the aggregate
    /// poisoned) if a mutator refuses an event it accepted before.
    fn replayed_state(&mut self, mut state: T, until: usize) -> Option<T> {
        let from = self.rollback.first().map_or(until, |outer| outer.pending);
        for envelope in self.pending.get(from..until).unwrap_or_default() {
            if state.apply(envelope.event.clone()).is_err() {
                self.poisoned = true;
                return None;
            }
        }
        Some(state)
    }

    /// Rebuilds an aggregate from its recorded events, oldest first (the event player).
    ///
    /// Returns `Ok(None)` when there are no events. Events must be contiguous and belong to
    /// one stream; a panic in the mutator is caught and reported as
    /// [`DomainError::MutatorPanicked`].
    ///
    /// # Errors
    /// The mutator's error for the first event it rejects.
    pub fn replay<I>(events: I) -> Result<Option<Self>, ReplayError>
    where
        I: IntoIterator<Item = EventEnvelope<T::Event>>,
    {
        let mut aggregate: Option<Self> = None;
        for envelope in events {
            aggregate = Some(Self::replay_one(aggregate, envelope)?);
        }
        Ok(aggregate)
    }

    /// Applies one recorded event during replay; `None` starts a new aggregate.
    ///
    /// # Errors
    /// See [`Aggregate::replay`].
    pub fn replay_one(
        aggregate: Option<Self>,
        envelope: EventEnvelope<T::Event>,
    ) -> Result<Self, ReplayError> {
        let EventEnvelope {
            stream_id,
            version,
            metadata,
            event,
            ..
        } = envelope;
        let topic = event.topic();
        let fail = |error: DomainError| ReplayError {
            stream_id,
            version,
            error,
        };
        match aggregate {
            None => {
                let state = apply_caught::<T>(None, event, topic).map_err(fail)?;
                Ok(Self {
                    id: stream_id,
                    version,
                    created_on: metadata.timestamp,
                    modified_on: metadata.timestamp,
                    state,
                    pending: Vec::new(),
                    context: EventContext::default(),
                    rollback: Vec::new(),
                    rollback_state: None,
                    poisoned: false,
                })
            }
            Some(mut aggregate) => {
                aggregate.state =
                    apply_caught::<T>(Some(aggregate.state), event, topic).map_err(fail)?;
                aggregate.version = version;
                aggregate.modified_on = metadata.timestamp;
                Ok(aggregate)
            }
        }
    }

    /// Rebuilds from a snapshot of the state at `version`.
    #[must_use]
    pub fn from_snapshot(
        id: Uuid,
        version: u64,
        created_on: Timestamp,
        modified_on: Timestamp,
        state: T,
    ) -> Self {
        Self {
            id,
            version,
            created_on,
            modified_on,
            state,
            pending: Vec::new(),
            context: EventContext::default(),
            rollback: Vec::new(),
            rollback_state: None,
            poisoned: false,
        }
    }

    /// The entity's id, which is also its stream id.
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The number of events in the entity's history, including pending ones.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version the store holds: [`Aggregate::version`] minus pending events.
    #[must_use]
    pub fn saved_version(&self) -> u64 {
        self.version - self.pending.len() as u64
    }

    /// When the creation event was recorded.
    #[must_use]
    pub fn created_on(&self) -> Timestamp {
        self.created_on
    }

    /// When the latest event was recorded.
    #[must_use]
    pub fn modified_on(&self) -> Timestamp {
        self.modified_on
    }

    /// The state (also reachable through `Deref`).
    #[must_use]
    pub fn state(&self) -> &T {
        &self.state
    }

    /// Consumes the aggregate, returning its state.
    #[must_use]
    pub fn into_state(self) -> T {
        self.state
    }

    /// Events recorded since the aggregate was created or last saved.
    #[must_use]
    pub fn pending_events(&self) -> &[EventEnvelope<T::Event>] {
        &self.pending
    }

    /// Takes the pending events out: the seed's "collect pending events". After a successful
    /// save the application does this for you.
    pub fn collect_events(&mut self) -> Vec<EventEnvelope<T::Event>> {
        std::mem::take(&mut self.pending)
    }

    /// The causation, correlation and user values that events recorded from now on carry.
    pub fn set_context(&mut self, context: EventContext) {
        self.context = context;
    }

    /// The current event context.
    #[must_use]
    pub fn context(&self) -> &EventContext {
        &self.context
    }

    /// Copies the state, version and pending events now, so that a command spanning several
    /// aggregates can undo its recorded events with [`Aggregate::restore`]. It clones the
    /// whole state; for several commands on one aggregate prefer [`Aggregate::atomically`],
    /// which copies only if an event is recorded (generated commands returning a `Result`
    /// roll back the same way by themselves).
    #[must_use]
    pub fn checkpoint(&self) -> Checkpoint<T> {
        Checkpoint {
            version: self.version,
            modified_on: self.modified_on,
            state: self.state.clone(),
            pending: self.pending.len(),
        }
    }

    /// Returns to a checkpoint, dropping the events recorded since.
    pub fn restore(&mut self, checkpoint: Checkpoint<T>) {
        // The whole state is replaced, so a mutator's panic since then no longer matters.
        self.poisoned = false;
        self.version = checkpoint.version;
        self.modified_on = checkpoint.modified_on;
        self.state = checkpoint.state;
        self.pending.truncate(checkpoint.pending);
    }

    /// Runs several commands as one: when `commands` returns `Err` or panics, every event it
    /// recorded is dropped and the state, version and timestamps are as before the call, as
    /// for a single generated command that returns `Err`. The state is copied once, at the
    /// first recorded event, and not at all if none is.
    ///
    /// ```ignore
    /// dog.atomically(|dog| {
    ///     dog.add_trick_once("sit".into())?;
    ///     dog.add_trick_once("paw".into())
    /// })?;
    /// ```
    ///
    /// # Errors
    /// The error `commands` returns, after the rollback.
    pub fn atomically<R, E>(
        &mut self,
        commands: impl FnOnce(&mut Self) -> Result<R, E>,
    ) -> Result<R, E> {
        self.begin_command();
        match catch_unwind(AssertUnwindSafe(|| commands(self))) {
            Ok(result) => {
                self.end_command(result.is_err());
                result
            }
            Err(panic) => {
                self.end_command(true);
                resume_unwind(panic)
            }
        }
    }
}

/// Where a fallible command began: what its rollback returns to.
#[derive(Debug, Clone, Copy)]
struct RollbackPoint {
    version: u64,
    modified_on: Timestamp,
    pending: usize,
}

/// A copy of an aggregate's mutable parts, taken before a command that may fail.
#[derive(Debug)]
pub struct Checkpoint<T> {
    version: u64,
    modified_on: Timestamp,
    state: T,
    pending: usize,
}

fn apply_caught<T: Entity>(
    state: Option<T>,
    event: T::Event,
    topic: &'static str,
) -> Result<T, DomainError> {
    match catch_unwind(AssertUnwindSafe(|| T::mutate(state, event))) {
        Ok(result) => result,
        Err(panic) => Err(DomainError::MutatorPanicked {
            topic: topic.to_owned(),
            message: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        }),
    }
}

impl<T: Entity> Deref for Aggregate<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.state
    }
}

/// A replay that stopped at an event the mutator could not apply.
#[derive(Debug, thiserror::Error)]
#[error("replaying stream {stream_id} stopped at version {version}: {error}")]
pub struct ReplayError {
    /// The stream being replayed.
    pub stream_id: Uuid,
    /// The version of the event that failed.
    pub version: u64,
    /// What went wrong.
    #[source]
    pub error: DomainError,
}
