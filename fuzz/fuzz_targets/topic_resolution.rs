//! Topic resolution in the global registry and on an event type: any string gives a
//! registration or an `UnknownTopic` error listing the known topics, never a panic.
#![no_main]

use eventsourcing::domain::{resolve_topic, DomainError};
use eventsourcing::prelude::*;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Topic")]
enum TopicEvent {
    #[domain_event(aliases = ["Old.Started", "Older.Started"])]
    Started,
    Stopped,
}

fuzz_target!(|data: &[u8]| {
    let topic = String::from_utf8_lossy(data);
    match TopicEvent::resolve(&topic) {
        Ok(registration) => assert!(
            registration.topic == topic || registration.aliases.contains(&&*topic)
        ),
        Err(DomainError::UnknownTopic { known, .. }) => assert_eq!(known.len(), 2),
        Err(other) => panic!("unexpected error {other:?}"),
    }
    let _ = resolve_topic(&topic);
});
