//! The original README's `Example` entity, in the explicit style: hand-written events, a
//! hand-written mutator, a factory function, a repository type, and an application that
//! stores events through a persistence subscriber on a bus.

use eventsourcing::prelude::*;
use eventsourcing::{EventBus, Mapper, PersistenceSubscriber};

/// The events of an [`Example`]: created with two values, and discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Example")]
pub enum ExampleEvent {
    /// An example was created.
    #[domain_event(creates)]
    Created {
        /// The first value.
        a: i64,
        /// The second value.
        b: i64,
    },
    /// The example was discarded.
    Discarded,
}

/// An example entity: two values, and whether it was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The first value.
    pub a: i64,
    /// The second value.
    pub b: i64,
    discarded: bool,
}

/// The mutator: handles every event, the creation event by instantiating the entity.
///
/// # Errors
/// A creation event for an existing entity, another event for a missing one, or any event
/// after the entity was discarded.
pub fn example_mutator(
    entity: Option<Example>,
    event: ExampleEvent,
) -> Result<Example, DomainError> {
    match (entity, event) {
        (None, ExampleEvent::Created { a, b }) => Ok(Example {
            a,
            b,
            discarded: false,
        }),
        (Some(entity), event) if entity.discarded => Err(DomainError::rejected(
            event.topic(),
            "the example is discarded",
        )),
        (Some(entity), ExampleEvent::Discarded) => Ok(Example {
            discarded: true,
            ..entity
        }),
        (None, event) => Err(DomainError::NotCreated {
            topic: event.topic().into(),
        }),
        (Some(_), event) => Err(DomainError::AlreadyCreated {
            topic: event.topic().into(),
        }),
    }
}

impl Entity for Example {
    type Event = ExampleEvent;
    const NAME: &'static str = "Example";

    fn mutate(state: Option<Self>, event: ExampleEvent) -> Result<Self, DomainError> {
        example_mutator(state, event)
    }

    fn is_discarded(&self) -> bool {
        self.discarded
    }
}

/// The factory: makes the creation event and applies it, giving a new entity whose
/// creation event is pending.
///
/// # Errors
/// Never for a well-formed mutator; typed for the sake of hand-written ones.
pub fn register_new_example(a: i64, b: i64) -> Result<Aggregate<Example>, DomainError> {
    Aggregate::create(ExampleEvent::Created { a, b })
}

/// Discards an example.
///
/// # Errors
/// When the example was already discarded.
pub fn discard(example: &mut Aggregate<Example>) -> Result<(), DomainError> {
    example.record(ExampleEvent::Discarded)
}

/// The repository of examples.
#[derive(Debug, Clone)]
pub struct ExampleRepository {
    event_store: EventStore,
}

impl EventSourcedRepository for ExampleRepository {
    type Entity = Example;

    fn event_store(&self) -> &EventStore {
        &self.event_store
    }
}

/// The application: an event store, a bus whose published events a persistence subscriber
/// stores, the repository and the factory.
#[derive(Debug)]
pub struct ExampleApplication {
    bus: EventBus,
    mapper: Mapper,
    _persistence_subscriber: PersistenceSubscriber,
    /// The repository of examples.
    pub example_repo: ExampleRepository,
}

impl ExampleApplication {
    /// An application storing events in `event_store`.
    #[must_use]
    pub fn new(event_store: EventStore) -> Self {
        let bus = EventBus::new();
        let subscriber = PersistenceSubscriber::new(event_store.clone(), &bus);
        Self {
            bus,
            mapper: event_store.mapper().clone(),
            _persistence_subscriber: subscriber,
            example_repo: ExampleRepository { event_store },
        }
    }

    /// Registers a new example: the factory makes it, its events are published, and the
    /// persistence subscriber stores them.
    ///
    /// # Errors
    /// When storing fails (the error of the subscriber, e.g. a conflict).
    pub fn register_new_example(
        &self,
        a: i64,
        b: i64,
    ) -> Result<Aggregate<Example>, Box<dyn std::error::Error>> {
        let mut example = register_new_example(a, b)?;
        self.publish(&mut example)?;
        Ok(example)
    }

    /// Publishes an example's pending events, which the persistence subscriber stores.
    ///
    /// # Errors
    /// When storing fails; the events stay pending then.
    pub fn publish(
        &self,
        example: &mut Aggregate<Example>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.bus
            .publish_events(&self.mapper, example.pending_events())?;
        drop(example.collect_events());
        Ok(())
    }
}
