//! `DomainEvent::decode_stored` on a macro-generated event enum: any topic, schema version and
//! payload bytes give a value or a typed error, never a panic.
#![no_main]

use eventsourcing::prelude::*;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Fuzz")]
enum FuzzEvent {
    Created { name: String, tags: Vec<String> },
    Moved { x: i64, y: i64 },
    Nested(Option<Box<FuzzEvent>>),
    Empty,
}

fuzz_target!(|data: &[u8]| {
    // Layout: [topic selector][schema version byte][payload...]
    let Some((&selector, rest)) = data.split_first() else { return };
    let Some((&version, payload)) = rest.split_first() else { return };
    let topics = FuzzEvent::topics();
    let topic = topics
        .get(usize::from(selector) % (topics.len() + 1))
        .copied()
        .unwrap_or("Fuzz.Unknown");
    if let Ok(event) = FuzzEvent::decode_stored(topic, u32::from(version % 3), payload) {
        // Whatever decodes must encode and decode to the same JSON.
        let json = event.encode().expect("a decoded event encodes");
        let again = FuzzEvent::decode(event.topic(), &json).expect("round trip");
        assert_eq!(again.encode().expect("encode"), json);
    }
});
