//! Two crates claiming one topic: `eventsourcing-fixtures` names `Cat.Born`, and so does this
//! binary. The registry check that every application runs when it is built finds it.

use eventsourcing::domain::validate_registry;
use eventsourcing::prelude::*;

/// This crate's idea of a cat's birth, under the fixture crate's topic.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(topic = "Cat.Born")]
struct Born {
    name: String,
}

#[test]
fn a_topic_claimed_by_two_crates_is_a_typed_error_naming_both_types() {
    assert_eq!(eventsourcing_fixtures::CatBorn::topics(), vec!["Cat.Born"]);
    assert_eq!(Born::topics(), vec!["Cat.Born"]);
    let error = validate_registry().expect_err("duplicate across crates");
    match &error {
        DomainError::DuplicateTopic {
            topic,
            first,
            second,
        } => {
            assert_eq!(topic, "Cat.Born");
            let types = [*first, *second];
            assert!(
                types
                    .iter()
                    .any(|t| t.starts_with("eventsourcing_fixtures::")),
                "{types:?}"
            );
            assert!(
                types
                    .iter()
                    .any(|t| t.starts_with("registry_across_crates::")),
                "{types:?}"
            );
        }
        other => panic!("expected DuplicateTopic, got {other:?}"),
    }
    let refused = Application::builder()
        .url("memory:")
        .and_then(|b| b.build());
    assert!(matches!(
        refused,
        Err(ApplicationError::Domain(DomainError::DuplicateTopic { .. }))
    ));
}
