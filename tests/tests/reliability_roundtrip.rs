//! Property tests in the normal suite (the fuzz targets' counterpart on stable): arbitrary
//! events encode and decode to themselves, arbitrary stored events round-trip exactly through
//! SQLite, and arbitrary payload bytes decode to a value or a typed error, never a panic.

use std::sync::Arc;

use eventsourcing::domain::{DomainEvent, Metadata};
use eventsourcing::persistence::{EventQuery, Mapper, Storage, StoredEvent, StreamAppend};
use eventsourcing_examples::dog_school::DogEvent;
use eventsourcing_tests::crash::scale;
use eventsourcing_tests::fresh_sqlite;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    Config::with_cases(u32::try_from(scale(256, 20_000)).unwrap_or(256))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_payload_bytes_decode_or_fail_typed(
        topic in prop_oneof![Just("Dog.Registered".to_owned()), Just("Dog.TrickAdded".to_owned()), ".{0,20}"],
        version in 0u32..4,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let stored = StoredEvent {
            stream_id: uuid::Uuid::now_v7().to_string(),
            version: 1,
            topic,
            schema_version: version,
            payload,
            metadata: Metadata::new(),
            position: Some(7),
        };
        let _ = Mapper::new().to_envelope::<DogEvent>(stored);
    }

    #[test]
    fn events_encode_and_decode_to_themselves(name in ".*", trick in ".*") {
        for event in [
            DogEvent::Registered { name: name.clone() },
            DogEvent::TrickAdded { trick: trick.clone() },
        ] {
            let json = event.encode().expect("encode");
            let back = DogEvent::decode_stored(event.topic(), event.schema_version(), &json)
                .expect("decode");
            prop_assert_eq!(back.encode().expect("encode"), json);
        }
    }
}

#[test]
fn stored_events_round_trip_exactly_through_sqlite() {
    let store: Arc<dyn Storage> = fresh_sqlite("roundtrip");
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (
        "[^\u{0}]{1,40}",
        "[^\u{0}]{0,40}",
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::btree_map("[^\u{0}]{0,10}", "[^\u{0}]{0,10}", 0..3),
    );
    runner
        .run(&strategy, |(stream, topic, payload, user)| {
            let stream = format!("{stream}-{}", uuid::Uuid::now_v7());
            let mut metadata = Metadata::new();
            metadata.user = user;
            let event = StoredEvent {
                stream_id: stream.clone(),
                version: 1,
                topic,
                schema_version: 1,
                payload,
                metadata,
                position: None,
            };
            store
                .append(&[StreamAppend {
                    stream_id: stream.clone(),
                    expected_version: 0,
                    events: vec![event.clone()],
                }])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut read = store
                .select_events(&stream, &EventQuery::all())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(read.len(), 1);
            read[0].position = None;
            prop_assert_eq!(&read[0], &event);
            Ok(())
        })
        .expect("round trip");
}
