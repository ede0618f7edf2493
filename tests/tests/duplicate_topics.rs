//! Two event types claiming one topic are found by the registry check that every application
//! runs when it is built. (Its own test binary: registrations are global to a process.)

use eventsourcing::domain::validate_registry;
use eventsourcing::prelude::*;

mod original {
    use eventsourcing::prelude::*;

    /// Events of a cat.
    #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
    #[domain_event(entity = "Cat")]
    pub(crate) enum CatEvent {
        /// Born.
        Born,
    }
}

mod copy {
    use eventsourcing::prelude::*;

    /// Another crate's event that reuses the topic by mistake.
    #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
    #[domain_event(topic = "Cat.Born")]
    pub(crate) struct Born;
}

#[test]
fn duplicate_topics_are_detected_at_start_up() {
    assert_eq!(original::CatEvent::topics(), vec!["Cat.Born"]);
    assert_eq!(copy::Born::topics(), vec!["Cat.Born"]);
    let error = validate_registry().expect_err("duplicate");
    match &error {
        DomainError::DuplicateTopic {
            topic,
            first,
            second,
        } => {
            assert_eq!(topic, "Cat.Born");
            assert_ne!(first, second);
        }
        other => panic!("expected DuplicateTopic, got {other:?}"),
    }
    let error = Application::builder()
        .url("memory:")
        .and_then(|b| b.build())
        .expect_err("refused");
    assert!(matches!(
        error,
        ApplicationError::Domain(DomainError::DuplicateTopic { .. })
    ));
    // Every constructor checks the registry, not only the builder (issue 9, item 14).
    for (name, built) in [
        ("in_memory", Application::in_memory()),
        (
            "with_store",
            Application::with_store(EventStore::in_memory()),
        ),
    ] {
        match built {
            Err(ApplicationError::Domain(DomainError::DuplicateTopic { topic, .. })) => {
                assert_eq!(topic, "Cat.Born", "{name}");
            }
            Err(other) => panic!("{name}: expected DuplicateTopic, got {other}"),
            Ok(_) => panic!("{name}: built an application over a registry with a duplicate"),
        }
    }
}
