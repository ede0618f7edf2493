//! The entity trait: a plain state type and the mutator that evolves it by events.

use super::error::DomainError;
use super::event::DomainEvent;
use super::snapshot::SnapshotCodec;

/// The state of an event-sourced entity, and how events change it.
///
/// `#[entity]` implements this for you. By hand (the seed's explicit style), write the mutator:
///
/// ```
/// use eventsourcing::prelude::*;
///
/// #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
/// #[domain_event(entity = "Counter")]
/// enum CounterEvent { Started, Incremented { by: u32 } }
///
/// #[derive(Debug, Clone)]
/// struct Counter { total: u32 }
///
/// impl Entity for Counter {
///     type Event = CounterEvent;
///     const NAME: &'static str = "Counter";
///
///     fn mutate(state: Option<Self>, event: CounterEvent) -> Result<Self, DomainError> {
///         match (state, event) {
///             (None, CounterEvent::Started) => Ok(Counter { total: 0 }),
///             (Some(c), CounterEvent::Incremented { by }) => Ok(Counter { total: c.total + by }),
///             (None, e) => Err(DomainError::NotCreated { topic: e.topic().into() }),
///             (Some(_), e) => Err(DomainError::AlreadyCreated { topic: e.topic().into() }),
///         }
///     }
/// }
///
/// let mut counter = Aggregate::<Counter>::create(CounterEvent::Started).unwrap();
/// counter.record(CounterEvent::Incremented { by: 2 }).unwrap();
/// assert_eq!(counter.total, 2);
/// assert_eq!(counter.version(), 2);
/// ```
pub trait Entity: Sized + Clone + Send + Sync + 'static {
    /// The entity's events.
    type Event: DomainEvent;

    /// The entity name used in topics and error messages, e.g. `"Dog"`.
    const NAME: &'static str;

    /// Applies one event: with `None`, the event must create the entity; with `Some`, it
    /// changes the existing state. Must be deterministic: it runs when an event is recorded and
    /// again every time the entity is loaded.
    ///
    /// # Errors
    /// [`DomainError::NotCreated`], [`DomainError::AlreadyCreated`] or
    /// [`DomainError::Rejected`] when the event does not fit the state.
    fn mutate(state: Option<Self>, event: Self::Event) -> Result<Self, DomainError>;

    /// Applies one event to the existing state in place: what
    /// [`Aggregate::record`](super::Aggregate::record) calls. It must either change `self` as
    /// [`Entity::mutate`] would and return `Ok`, or return `Err` with `self` unchanged.
    ///
    /// The default runs [`Entity::mutate`] on a copy of the state, which costs a clone of the
    /// whole state per recorded event but is right for any mutator. `#[entity]` overrides it:
    /// its event methods change the state in place and cannot refuse, so recording costs the
    /// size of the event, whatever the size of the state.
    ///
    /// # Errors
    /// As [`Entity::mutate`], with `self` unchanged.
    fn apply(&mut self, event: Self::Event) -> Result<(), DomainError> {
        *self = Self::mutate(Some(self.clone()), event)?;
        Ok(())
    }

    /// Whether the entity has been discarded; repositories report discarded entities as
    /// [`crate::application::ApplicationError::Discarded`]. Defaults to never.
    fn is_discarded(&self) -> bool {
        false
    }

    /// How the state is snapshotted; `None` (the default) means it never is. `#[entity]`
    /// returns [`SnapshotCodec::json`] with the entity's settings.
    fn snapshot_codec() -> Option<SnapshotCodec<Self>> {
        None
    }
}
