//! A missing upcaster is found when the application is built, not at the first old event.
//!
//! Registrations are global to a test binary, so this broken registration lives in its own.

use eventsourcing::domain::{register, DomainError, DomainEvent, TopicRegistration, Upcaster};
use eventsourcing::{Application, ApplicationError, EventStore};

#[derive(Debug, Clone)]
struct Renamed;

fn v1_to_v2(value: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(value)
}

/// Version 3 with an upcaster from version 1 only: nothing reads version 2.
static TOPICS: [TopicRegistration; 1] = [TopicRegistration {
    topic: "Broken.Renamed",
    entity: "Broken",
    event: "Renamed",
    type_name: "Renamed",
    version: 3,
    aliases: &[],
    upcasters: &[Upcaster {
        from_version: 1,
        upcast: v1_to_v2,
    }],
    creates: true,
}];

impl DomainEvent for Renamed {
    fn registrations() -> &'static [TopicRegistration] {
        &TOPICS
    }
    fn registration(&self) -> &'static TopicRegistration {
        &TOPICS[0]
    }
    fn encode(&self) -> Result<Vec<u8>, DomainError> {
        Ok(b"{}".to_vec())
    }
    fn decode(_topic: &str, _payload: &[u8]) -> Result<Self, DomainError> {
        Ok(Self)
    }
    fn decode_value(_topic: &str, _value: serde_json::Value) -> Result<Self, DomainError> {
        Ok(Self)
    }
}

#[test]
fn building_an_application_detects_a_missing_upcaster() {
    assert!(Application::builder()
        .url("memory:")
        .and_then(|b| b.build())
        .is_ok());
    register::<Renamed>();
    let error = Application::builder()
        .url("memory:")
        .and_then(|b| b.build())
        .expect_err("missing upcaster");
    match error {
        ApplicationError::Domain(DomainError::MissingUpcaster {
            topic,
            from_version,
            current_version,
        }) => assert_eq!(
            (topic.as_str(), from_version, current_version),
            ("Broken.Renamed", 2, 3)
        ),
        other => panic!("expected MissingUpcaster, got {other}"),
    }
    // Every constructor checks the registry, not only the builder (issue 9, item 14).
    for (name, built) in [
        ("in_memory", Application::in_memory()),
        (
            "with_store",
            Application::with_store(EventStore::in_memory()),
        ),
    ] {
        match built {
            Err(ApplicationError::Domain(DomainError::MissingUpcaster { topic, .. })) => {
                assert_eq!(topic, "Broken.Renamed", "{name}");
            }
            Err(other) => panic!("{name}: expected MissingUpcaster, got {other}"),
            Ok(_) => panic!("{name}: built an application over a registry with a gap"),
        }
    }
}

#[test]
fn decoding_through_the_gap_is_a_typed_error() {
    let error = Renamed::decode_stored("Broken.Renamed", 2, b"{}").expect_err("gap");
    assert!(matches!(
        error,
        DomainError::MissingUpcaster {
            from_version: 2,
            ..
        }
    ));
}
