//! An events crate that the binary links but never names: `eventsourcing-fixtures` is a
//! dependency of this test crate, yet nothing below mentions it. The linker keeps only the
//! object files a binary references, so the crate's `inventory` registrations are dropped and
//! its topics do not resolve. The fix is in `registry_explicit.rs`: name the crate, e.g. call
//! its registration function (`eventsourcing::domain::register::<E>()` for each event type).

use eventsourcing::domain::resolve_topic;
use eventsourcing::prelude::*;

#[test]
fn topics_of_an_unreferenced_events_crate_do_not_resolve() {
    let error = resolve_topic("Fixture.Orphaned").expect_err("the crate was never linked in");
    match &error {
        DomainError::UnknownTopic { topic, known } => {
            assert_eq!(topic, "Fixture.Orphaned");
            // The error lists what the binary does know, which makes the cause visible: none
            // of the fixture crate's topics are there.
            assert!(
                !known.iter().any(|t| t.starts_with("Fixture.")),
                "{known:?}"
            );
        }
        other => panic!("expected UnknownTopic, got {other:?}"),
    }
}
