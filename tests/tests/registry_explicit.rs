//! The fix for an events crate the binary never names: register its types explicitly (which
//! also names the crate, so the linker keeps it).

use eventsourcing::domain::{resolve_topic, validate_registry};

#[test]
fn explicit_registration_makes_the_topics_resolve() {
    eventsourcing_fixtures::register_events();
    let registration = resolve_topic("Fixture.Orphaned").expect("registered explicitly");
    assert!(
        registration.type_name.ends_with("Orphaned"),
        "{}",
        registration.type_name
    );
    // Registering twice (explicitly, and through inventory now that the crate is linked) is
    // harmless: no duplicate is reported.
    eventsourcing_fixtures::register_events();
    validate_registry().expect("no duplicates from registering twice");
}
