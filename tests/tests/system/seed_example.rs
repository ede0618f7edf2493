//! The original README's example flow: factory, publish, persistence subscriber, repository.

use eventsourcing::prelude::*;
use eventsourcing::EventBus;
use eventsourcing_examples::seed::{
    discard, example_mutator, register_new_example, ExampleApplication, ExampleEvent,
};

#[test]
fn register_then_get_from_repository() {
    let app = ExampleApplication::new(EventStore::in_memory());
    let new_entity = app.register_new_example(10, 20).expect("register");
    let from_repo = app
        .example_repo
        .get(new_entity.id())
        .expect("stored by the subscriber");
    assert_eq!(new_entity.state(), from_repo.state());
    assert_eq!((from_repo.a, from_repo.b), (10, 20));
    assert_eq!(from_repo.version(), 1);
    assert!(app
        .example_repo
        .contains(new_entity.id())
        .expect("contains"));
    assert!(!app.example_repo.contains(Uuid::now_v7()).expect("contains"));
}

#[test]
fn discarded_examples_are_not_returned() {
    let app = ExampleApplication::new(EventStore::in_memory());
    let mut example = app.register_new_example(1, 2).expect("register");
    discard(&mut example).expect("discard");
    app.publish(&mut example).expect("publish");
    let error = app.example_repo.get(example.id()).expect_err("discarded");
    assert!(matches!(error, ApplicationError::Discarded { id } if id == example.id()));
    // The past stays readable.
    let before = app.example_repo.get_at(example.id(), 1).expect("version 1");
    assert_eq!(before.a, 1);
    // A discarded example refuses further events.
    let error = discard(&mut example).expect_err("already discarded");
    assert!(matches!(error, DomainError::Rejected { .. }), "{error:?}");
}

#[test]
fn mutator_handles_every_event_and_rejects_misfits() {
    let created = example_mutator(None, ExampleEvent::Created { a: 1, b: 2 }).expect("create");
    assert!(matches!(
        example_mutator(None, ExampleEvent::Discarded),
        Err(DomainError::NotCreated { .. })
    ));
    assert!(matches!(
        example_mutator(Some(created), ExampleEvent::Created { a: 3, b: 4 }),
        Err(DomainError::AlreadyCreated { .. })
    ));
}

#[test]
fn persistence_subscriber_reports_conflicts_to_the_publisher() {
    let store = EventStore::in_memory();
    let bus = EventBus::new();
    let _subscriber = eventsourcing::PersistenceSubscriber::new(store.clone(), &bus);
    let example = register_new_example(5, 6).expect("factory");
    bus.publish_events(store.mapper(), example.pending_events())
        .expect("first publish stores");
    let error = bus
        .publish_events(store.mapper(), example.pending_events())
        .expect_err("the same version again conflicts");
    assert_eq!(error.failures.len(), 1);
    let events = store.events::<ExampleEvent>(example.id()).expect("events");
    assert_eq!(events.len(), 1, "nothing duplicated");
}

#[test]
fn event_store_reads_by_id_topic_and_deletes() {
    let store = EventStore::in_memory();
    let mut one = register_new_example(1, 1).expect("factory");
    discard(&mut one).expect("discard");
    let two = register_new_example(2, 2).expect("factory");
    store.append(one.pending_events()).expect("append one");
    store.append(two.pending_events()).expect("append two");

    let created = store
        .events_by_topic::<ExampleEvent>("Example.Created", 1, 10)
        .expect("by topic");
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].stream_id, one.id());
    assert_eq!(created[1].event, ExampleEvent::Created { a: 2, b: 2 });

    let id = one.pending_events()[1].metadata.event_id;
    let found = store
        .event_by_id::<ExampleEvent>(id)
        .expect("by id")
        .expect("found");
    assert_eq!(found.event, ExampleEvent::Discarded);
    assert_eq!(found.version, 2);

    assert_eq!(store.delete_stream(one.id()).expect("delete"), 2);
    assert!(store
        .events::<ExampleEvent>(one.id())
        .expect("events")
        .is_empty());
    assert_eq!(
        store
            .events::<ExampleEvent>(two.id())
            .expect("events")
            .len(),
        1
    );
}
