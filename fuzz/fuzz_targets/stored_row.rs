//! A `StoredEvent` built from arbitrary bytes (stream id, topic, version, payload) decoded
//! through `Mapper::to_envelope`, and the same bytes as the metadata extras JSON: typed
//! errors, never a panic.
#![no_main]

use eventsourcing::domain::Metadata;
use eventsourcing::persistence::{Mapper, StoredEvent};
use eventsourcing::prelude::*;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Row")]
enum RowEvent {
    Written { text: String, n: u64 },
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Extras {
    #[serde(default)]
    causation_id: Option<uuid::Uuid>,
    #[serde(default)]
    correlation_id: Option<uuid::Uuid>,
    #[serde(default)]
    user: std::collections::BTreeMap<String, String>,
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0xff);
    let stream = parts.next().unwrap_or_default();
    let topic = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    let stored = StoredEvent {
        stream_id: String::from_utf8_lossy(stream).into_owned(),
        version: version.iter().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(*b))),
        topic: String::from_utf8_lossy(topic).into_owned(),
        schema_version: 1,
        payload: payload.to_vec(),
        metadata: Metadata::new(),
        position: Some(1),
    };
    let _ = Mapper::new().to_envelope::<RowEvent>(stored);
    let _ = serde_json::from_slice::<Extras>(data);
});
