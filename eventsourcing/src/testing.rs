//! Given/when/then test harnesses for entities, projections and process applications.
//!
//! These helpers are for tests: when an expectation fails they panic with a message that
//! shows what was expected and what happened, as `assert_eq!` does. Events are compared by
//! topic and JSON payload, so event types need no `PartialEq`.
//!
//! Entities: given past events, when a command runs, then these new events (or this error):
//!
//! ```
//! use eventsourcing::prelude::*;
//! use eventsourcing::testing::given;
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Dog { name: String, tricks: Vec<String> }
//!
//! #[entity]
//! impl Dog {
//!     #[event(Registered)]
//!     fn register(name: String) -> Self { Dog { name, tricks: Vec::new() } }
//!     #[event(TrickAdded)]
//!     fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
//!     fn add_trick_once(&mut self, trick: String) -> Result<(), String> {
//!         if self.tricks.contains(&trick) { return Err(format!("knows {trick}")); }
//!         self.add_trick(trick);
//!         Ok(())
//!     }
//! }
//!
//! given::<Dog>([DogEvent::Registered { name: "Fido".into() }])
//!     .when(|dog| dog.add_trick_once("sit".into()))
//!     .then_events([DogEvent::TrickAdded { trick: "sit".into() }]);
//!
//! given::<Dog>([
//!     DogEvent::Registered { name: "Fido".into() },
//!     DogEvent::TrickAdded { trick: "sit".into() },
//! ])
//! .when(|dog| dog.add_trick_once("sit".into()))
//! .then_error("knows sit".to_string());
//!
//! eventsourcing::testing::given_no_history::<Dog>()
//!     .when_created(|| Dog::register("Rex".into()))
//!     .then_events([DogEvent::Registered { name: "Rex".into() }]);
//! ```
//!
//! Projections and process applications: given upstream events (a [`History`]), when they
//! are projected or processed, then this state or these downstream events. See
//! [`History::when_projected`] and [`History::when_processed_by`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;

use uuid::Uuid;

use crate::application::Application;
use crate::domain::{Aggregate, DomainEvent, Entity, EventEnvelope, Metadata};
use crate::persistence::{Mapper, StoredEvent, StreamAppend};
use crate::system::{Notification, Policy, ProcessApplication, Projection, SystemError, Upstream};

/// Starts an entity scenario from past events (the first must create the entity).
///
/// # Panics
/// When the events cannot be replayed, or there are none (use [`given_no_history`]).
#[must_use]
pub fn given<T: Entity>(events: impl IntoIterator<Item = T::Event>) -> Given<T> {
    let id = Uuid::now_v7();
    let envelopes = (1u64..)
        .zip(events)
        .map(|(version, event)| EventEnvelope::new(id, version, event));
    match Aggregate::<T>::replay(envelopes) {
        Ok(Some(aggregate)) => Given {
            aggregate: Some(aggregate),
        },
        Ok(None) => panic!(
            "given::<{}>(): no events; use given_no_history::<{}>().when_created(..) for creation",
            T::NAME,
            T::NAME
        ),
        Err(error) => panic!(
            "given::<{}>(): the history does not replay: {error}",
            T::NAME
        ),
    }
}

/// Starts an entity scenario with no history, for creation commands
/// ([`Given::when_created`]).
#[must_use]
pub fn given_no_history<T: Entity>() -> Given<T> {
    Given { aggregate: None }
}

/// An entity scenario's past: see [`given`].
#[derive(Debug)]
pub struct Given<T: Entity> {
    aggregate: Option<Aggregate<T>>,
}

impl<T: Entity> Given<T> {
    /// Runs a command on the aggregate. The command may return `()` or any `Result`.
    ///
    /// # Panics
    /// When the scenario has no history.
    pub fn when<R: Outcome>(
        self,
        command: impl FnOnce(&mut Aggregate<T>) -> R,
    ) -> Then<T, R::Error> {
        let Some(mut aggregate) = self.aggregate else {
            panic!(
                "when(): `{}` has no history; use when_created(..) for a creation command",
                T::NAME
            );
        };
        let error = command(&mut aggregate).into_error();
        Then { aggregate, error }
    }

    /// Runs a creation command (a factory).
    ///
    /// # Panics
    /// When the scenario has a history: the entity exists already.
    pub fn when_created(self, factory: impl FnOnce() -> Aggregate<T>) -> Then<T, Infallible> {
        assert!(
            self.aggregate.is_none(),
            "when_created(): `{}` already has a history; use when(..)",
            T::NAME
        );
        Then {
            aggregate: factory(),
            error: None,
        }
    }
}

/// What a command returns: `()` (never fails) or a `Result`.
pub trait Outcome {
    /// The command's error type.
    type Error;
    /// The error, if the command failed.
    fn into_error(self) -> Option<Self::Error>;
}

impl Outcome for () {
    type Error = Infallible;
    fn into_error(self) -> Option<Infallible> {
        None
    }
}

impl<V, E> Outcome for Result<V, E> {
    type Error = E;
    fn into_error(self) -> Option<E> {
        self.err()
    }
}

/// The result of an entity scenario's command, to check.
#[derive(Debug)]
pub struct Then<T: Entity, E> {
    aggregate: Aggregate<T>,
    error: Option<E>,
}

impl<T: Entity, E: Debug> Then<T, E> {
    /// Asserts the command succeeded and recorded exactly `expected`; returns the aggregate
    /// for further checks.
    ///
    /// # Panics
    /// When the command failed or recorded other events.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = T::Event>) -> Aggregate<T> {
        if let Some(error) = &self.error {
            panic!("expected events, but the command failed: {error:?}");
        }
        let actual: Vec<T::Event> = self
            .aggregate
            .pending_events()
            .iter()
            .map(|e| e.event.clone())
            .collect();
        assert_same_events(&actual, &expected.into_iter().collect::<Vec<_>>());
        self.aggregate
    }

    /// Asserts the command succeeded without recording events.
    ///
    /// # Panics
    /// When the command failed or recorded events.
    #[track_caller]
    pub fn then_no_events(self) -> Aggregate<T> {
        self.then_events([])
    }

    /// Asserts the command failed with `expected` and recorded nothing.
    ///
    /// # Panics
    /// When the command succeeded, failed otherwise, or left events behind.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: PartialEq,
    {
        match &self.error {
            Some(error) => assert_eq!(error, &expected, "the command failed with another error"),
            None => panic!("expected the error {expected:?}, but the command succeeded"),
        }
        self.assert_unchanged();
    }

    /// Asserts the command failed with an error that `check` accepts, and recorded nothing.
    ///
    /// # Panics
    /// When the command succeeded, `check` returns false, or events were left behind.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&E) -> bool) {
        match &self.error {
            Some(error) => assert!(check(error), "unexpected error: {error:?}"),
            None => panic!("expected an error, but the command succeeded"),
        }
        self.assert_unchanged();
    }

    /// The aggregate after the command (for checks on its state) and the error, if any.
    #[must_use]
    pub fn into_parts(self) -> (Aggregate<T>, Option<E>) {
        (self.aggregate, self.error)
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        let left = self.aggregate.pending_events();
        assert!(
            left.is_empty(),
            "the failed command left {} event(s) behind: {:?}",
            left.len(),
            left.iter().map(|e| &e.event).collect::<Vec<_>>()
        );
    }
}

/// A topic and JSON payload: how the harnesses compare events.
fn fingerprint<E: DomainEvent>(event: &E) -> (String, serde_json::Value) {
    let payload = event
        .encode()
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| serde_json::Value::String(format!("{event:?}")));
    (event.topic().to_owned(), payload)
}

#[track_caller]
fn assert_same_events<E: DomainEvent>(actual: &[E], expected: &[E]) {
    let left: Vec<_> = actual.iter().map(fingerprint).collect();
    let right: Vec<_> = expected.iter().map(fingerprint).collect();
    assert!(
        left == right,
        "events differ\n  actual:   {actual:?}\n  expected: {expected:?}"
    );
}

/// Upstream events for projection and process-application scenarios, in log order.
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::persistence::BoxError;
/// use eventsourcing::system::{Notification, Projection};
/// use eventsourcing::testing::History;
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Note { text: String }
/// #[entity]
/// impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
///
/// #[derive(Default)]
/// struct Letters(usize);
/// impl Projection for Letters {
///     fn name(&self) -> &str { "letters" }
///     fn apply(&mut self, event: &Notification<'_>) -> Result<(), BoxError> {
///         if let Some(NoteEvent::Written { text }) = event.decode::<NoteEvent>()?.map(|e| e.event) {
///             self.0 += text.len();
///         }
///         Ok(())
///     }
///     fn reset(&mut self) { self.0 = 0; }
/// }
///
/// let letters = History::new()
///     .event(Uuid::now_v7(), NoteEvent::Written { text: "hello".into() })
///     .aggregate(&mut Note::write("world".into()))
///     .when_projected(Letters::default());
/// assert_eq!(letters.0, 10);
/// ```
#[derive(Debug, Clone, Default)]
pub struct History {
    events: Vec<StoredEvent>,
    versions: HashMap<String, u64>,
    mapper: Mapper,
}

impl History {
    /// No events yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event of stream `stream_id`, at the stream's next version.
    ///
    /// # Panics
    /// When the event cannot be encoded.
    #[must_use]
    pub fn event<E: DomainEvent>(self, stream_id: Uuid, event: E) -> Self {
        self.event_with(stream_id, event, Metadata::new())
    }

    /// As [`History::event`], with given metadata (e.g. a correlation id).
    ///
    /// # Panics
    /// When the event cannot be encoded.
    #[must_use]
    pub fn event_with<E: DomainEvent>(
        mut self,
        stream_id: Uuid,
        event: E,
        metadata: Metadata,
    ) -> Self {
        let version = self
            .versions
            .get(&stream_id.to_string())
            .map_or(1, |v| v + 1);
        let mut envelope = EventEnvelope::new(stream_id, version, event);
        envelope.metadata = metadata;
        self.push(&envelope);
        self
    }

    /// Adds an aggregate's pending events (taking them out of it).
    ///
    /// # Panics
    /// When an event cannot be encoded, or the aggregate's saved version does not follow the
    /// history of its stream.
    #[must_use]
    pub fn aggregate<T: Entity>(mut self, aggregate: &mut Aggregate<T>) -> Self {
        let saved = aggregate.saved_version();
        let known = self
            .versions
            .get(&aggregate.id().to_string())
            .copied()
            .unwrap_or_default();
        assert_eq!(
            saved, known,
            "History::aggregate: the aggregate is at saved version {saved}, the history at {known}"
        );
        for envelope in aggregate.collect_events() {
            self.push(&envelope);
        }
        self
    }

    fn push<E: DomainEvent>(&mut self, envelope: &EventEnvelope<E>) {
        let mut stored = match self.mapper.to_stored(envelope) {
            Ok(stored) => stored,
            Err(error) => panic!("History: cannot encode {:?}: {error}", envelope.event),
        };
        stored.position = Some(self.events.len() as u64 + 1);
        self.versions
            .insert(stored.stream_id.clone(), stored.version);
        self.events.push(stored);
    }

    /// The events, with positions from 1.
    #[must_use]
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// Applies every event (with the projection's topic filter) to `projection`.
    ///
    /// # Errors
    /// [`SystemError::Projection`] for the first event the projection rejects.
    pub fn project<P: Projection>(&self, mut projection: P) -> Result<P, SystemError> {
        let topics = projection.topics();
        for event in self
            .events
            .iter()
            .filter(|e| topics.is_empty() || topics.contains(&e.topic))
        {
            let notification = Notification::new(event, &self.mapper);
            projection
                .apply(&notification)
                .map_err(|source| SystemError::Projection {
                    projection: projection.name().to_owned(),
                    position: notification.position(),
                    source,
                })?;
        }
        Ok(projection)
    }

    /// As [`History::project`], panicking on error: the "when" of a projection scenario.
    ///
    /// # Panics
    /// When the projection fails.
    #[must_use]
    #[track_caller]
    pub fn when_projected<P: Projection>(&self, projection: P) -> P {
        match self.project(projection) {
            Ok(projection) => projection,
            Err(error) => panic!("the projection failed: {error}"),
        }
    }

    /// Records the events in a fresh in-memory upstream application and runs a process
    /// application with `policy` over them until caught up, writing to `downstream` (which
    /// may hold state already).
    ///
    /// # Errors
    /// The process application's first error.
    pub fn process<P: Policy>(
        &self,
        policy: P,
        downstream: Application,
    ) -> Result<Processing<P>, SystemError> {
        let upstream = Application::in_memory().map_err(|source| SystemError::Store {
            follower: "upstream".into(),
            source,
        })?;
        let appends = self.appends();
        if !appends.is_empty() {
            upstream
                .event_store()
                .commit(&appends, None, Vec::new())
                .map_err(|source| SystemError::Upstream {
                    upstream: "upstream".into(),
                    source,
                })?;
        }
        let before = downstream
            .event_store()
            .recorder()
            .max_position()
            .map_err(|source| SystemError::Store {
                follower: "downstream".into(),
                source: source.into(),
            })?;
        let mut process = ProcessApplication::new(
            downstream,
            Upstream::application("upstream", &upstream),
            policy,
        );
        process.run_until_caught_up()?;
        let events = process
            .application()
            .event_store()
            .recorder()
            .select_notifications(&crate::persistence::NotificationQuery::new(
                before + 1,
                usize::MAX,
            ))
            .map_err(|source| SystemError::Store {
                follower: "downstream".into(),
                source: source.into(),
            })?;
        Ok(Processing { process, events })
    }

    /// As [`History::process`] into a fresh in-memory downstream application, panicking on
    /// error: the "when" of a process-application scenario.
    ///
    /// ```
    /// use eventsourcing::prelude::*;
    /// use eventsourcing::persistence::BoxError;
    /// use eventsourcing::system::{Notification, ProcessingContext};
    /// use eventsourcing::testing::History;
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize)]
    /// pub struct Note { text: String }
    /// #[entity]
    /// impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
    ///
    /// fn shout(event: &Notification<'_>, ctx: &mut ProcessingContext<'_>) -> Result<(), BoxError> {
    ///     if let Some(NoteEvent::Written { text }) = event.decode::<NoteEvent>()?.map(|e| e.event) {
    ///         ctx.save(&mut Note::write(text.to_uppercase()))?;
    ///     }
    ///     Ok(())
    /// }
    ///
    /// History::new()
    ///     .aggregate(&mut Note::write("hi".into()))
    ///     .when_processed_by(shout)
    ///     .then_events([NoteEvent::Written { text: "HI".into() }]);
    /// ```
    ///
    /// # Panics
    /// When processing fails.
    #[track_caller]
    pub fn when_processed_by<P: Policy>(&self, policy: P) -> Processing<P> {
        let downstream = match Application::in_memory() {
            Ok(downstream) => downstream,
            Err(error) => panic!("the downstream application: {error}"),
        };
        match self.process(policy, downstream) {
            Ok(processing) => processing,
            Err(error) => panic!("processing failed: {error}"),
        }
    }

    /// The events as appends, one per run of consecutive events of a stream.
    fn appends(&self) -> Vec<StreamAppend> {
        let mut appends: Vec<StreamAppend> = Vec::new();
        for event in &self.events {
            let mut event = event.clone();
            event.position = None;
            match appends.last_mut() {
                Some(last) if last.stream_id == event.stream_id => last.events.push(event),
                _ => appends.push(StreamAppend {
                    stream_id: event.stream_id.clone(),
                    expected_version: event.version.saturating_sub(1),
                    events: vec![event],
                }),
            }
        }
        appends
    }
}

/// The outcome of a process-application scenario: the process application (with its
/// downstream application) and the downstream events it wrote.
#[derive(Debug)]
pub struct Processing<P> {
    process: ProcessApplication<P>,
    events: Vec<StoredEvent>,
}

impl<P: Policy> Processing<P> {
    /// The downstream events written, in log order.
    #[must_use]
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The process application, e.g. to read downstream aggregates.
    #[must_use]
    pub fn process(&self) -> &ProcessApplication<P> {
        &self.process
    }

    /// The downstream events decoded as `E` (events of other types are left out).
    ///
    /// # Panics
    /// When an event of `E`'s topics cannot be decoded.
    #[must_use]
    pub fn decoded<E: DomainEvent>(&self) -> Vec<E> {
        let mapper = self.process.application().event_store().mapper();
        self.events
            .iter()
            .filter(|e| E::resolve(&e.topic).is_ok())
            .map(|e| match mapper.decode_event::<E>(e) {
                Ok(event) => event,
                Err(error) => panic!("cannot decode downstream event: {error}"),
            })
            .collect()
    }

    /// Asserts that the downstream events are exactly `expected` (all of type `E`).
    ///
    /// # Panics
    /// When they differ, or events of other types were written.
    #[track_caller]
    pub fn then_events<E: DomainEvent>(self, expected: impl IntoIterator<Item = E>) -> Self {
        let decoded = self.decoded::<E>();
        assert_eq!(
            decoded.len(),
            self.events.len(),
            "events of other types were written too: {:?}",
            self.events.iter().map(|e| &e.topic).collect::<Vec<_>>()
        );
        assert_same_events(&decoded, &expected.into_iter().collect::<Vec<_>>());
        self
    }

    /// Asserts that nothing was written downstream.
    ///
    /// # Panics
    /// When something was.
    #[track_caller]
    pub fn then_no_events(self) -> Self {
        assert!(
            self.events.is_empty(),
            "expected no downstream events, found {:?}",
            self.events.iter().map(|e| &e.topic).collect::<Vec<_>>()
        );
        self
    }
}
