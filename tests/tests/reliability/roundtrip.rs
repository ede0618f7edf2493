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
                .append(
                    &[StreamAppend {
                        stream_id: stream.clone(),
                        expected_version: 0,
                        events: vec![event.clone()],
                    }],
                    None,
                )
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

/// A gauge whose readings are `f64`: floats must come back bit for bit, through events and
/// through snapshots, on every backend.
pub(crate) mod gauge {
    use eventsourcing::prelude::*;

    /// Every reading so far.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Gauge {
        /// The readings, oldest first.
        pub readings: Vec<f64>,
    }

    #[entity]
    impl Gauge {
        /// A new gauge with its first reading.
        #[event(Installed)]
        pub fn install(first: f64) -> Self {
            Gauge {
                readings: vec![first],
            }
        }

        /// One more reading.
        #[event(Read)]
        pub fn read(&mut self, value: f64) {
            self.readings.push(value);
        }
    }
}

#[test]
fn floats_round_trip_exactly_through_events_and_snapshots() {
    use eventsourcing::prelude::*;
    use gauge::{Gauge, GaugeCommands};

    // Values whose shortest decimal form a lax parser rounds to a neighbour.
    let values = [
        116.097_051_900_492_49,
        0.1 + 0.2,
        1e-308,
        f64::MAX,
        f64::MIN_POSITIVE,
        -2.225_073_858_507_201e-308,
        123_456_789.123_456_78,
        std::f64::consts::PI,
    ];
    for (name, make) in eventsourcing_tests::backends("float round trip") {
        let app = Application::builder()
            .storage(make())
            .build()
            .expect("build");
        let mut gauge = Gauge::install(values[0]);
        for v in &values[1..] {
            gauge.read(*v);
        }
        app.save(&mut gauge).expect("save");
        let replayed: Aggregate<Gauge> = app.repository().get(gauge.id()).expect("get");
        let bits = |g: &Gauge| g.readings.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&replayed), bits(&gauge), "{name}: replay");
        app.take_snapshot::<Gauge>(gauge.id(), None)
            .expect("snapshot");
        let from_snapshot: Aggregate<Gauge> = app.repository().get(gauge.id()).expect("get");
        assert_eq!(bits(&from_snapshot), bits(&gauge), "{name}: snapshot");
    }
}
