//! Topics: the function from an event to its topic, resolution of topics to registered types,
//! and typed errors for unknown topics.

use eventsourcing::domain::{known_topics, resolve_topic, validate_registry};
use eventsourcing::prelude::*;
use eventsourcing::topic_of;
use eventsourcing_examples::bank::AccountEvent;
use eventsourcing_examples::dog_school::DogEvent;
use eventsourcing_examples::seed::ExampleEvent;

#[test]
fn topics_are_entity_dot_event() {
    let event = DogEvent::TrickAdded {
        trick: "sit".into(),
    };
    assert_eq!(topic_of(&event), "Dog.TrickAdded");
    assert_eq!(DogEvent::topics(), vec!["Dog.Registered", "Dog.TrickAdded"]);
    assert_eq!(
        ExampleEvent::topics(),
        vec!["Example.Created", "Example.Discarded"]
    );
    assert_eq!(topic_of(&ExampleEvent::Discarded), "Example.Discarded");
}

#[test]
fn topics_resolve_to_registered_types() {
    let registration = resolve_topic("Dog.TrickAdded").expect("registered through inventory");
    assert_eq!(registration.entity, "Dog");
    assert_eq!(registration.event, "TrickAdded");
    assert!(
        registration.type_name.ends_with("DogEvent"),
        "{}",
        registration.type_name
    );
    assert_eq!(registration.version, 1);
    assert!(
        resolve_topic("Example.Created")
            .expect("explicit style too")
            .creates
    );
    assert!(resolve_topic("Account.Credited").is_ok());
    let known = known_topics();
    for topic in ["Dog.Registered", "Example.Discarded", "Account.Opened"] {
        assert!(known.contains(&topic), "{topic} in {known:?}");
    }
    validate_registry().expect("no duplicates, no missing upcasters");
}

#[test]
fn unknown_topic_is_a_typed_error_listing_known_topics() {
    let error = resolve_topic("Dog.Flew").expect_err("unknown");
    match &error {
        DomainError::UnknownTopic { topic, known } => {
            assert_eq!(topic, "Dog.Flew");
            assert!(known.iter().any(|t| t == "Dog.TrickAdded"));
        }
        other => panic!("expected UnknownTopic, got {other:?}"),
    }
    assert!(error.to_string().contains("Dog.TrickAdded"), "{error}");

    let error = AccountEvent::decode("Dog.Registered", b"{}").expect_err("not an account topic");
    assert!(matches!(error, DomainError::UnknownTopic { .. }));
}

#[test]
fn payloads_round_trip_and_bad_payloads_are_typed() {
    let event = DogEvent::TrickAdded {
        trick: "sit".into(),
    };
    let payload = event.encode().expect("encode");
    assert_eq!(
        payload, br#"{"trick":"sit"}"#,
        "the payload holds only the fields"
    );
    let back = DogEvent::decode("Dog.TrickAdded", &payload).expect("decode");
    assert!(matches!(back, DogEvent::TrickAdded { trick } if trick == "sit"));
    let error = DogEvent::decode("Dog.TrickAdded", br#"{"trick":42}"#).expect_err("wrong shape");
    assert!(matches!(error, DomainError::Payload { .. }), "{error:?}");
    let error = DogEvent::decode("Dog.TrickAdded", b"{not json").expect_err("malformed");
    assert!(matches!(error, DomainError::Payload { .. }), "{error:?}");
}
