//! Snapshot states have their own schema version and upcasters: a state version with no
//! upcaster is a typed error from the codec, and the repository falls back to replaying the
//! events (see `undecodable_snapshots_fall_back_to_replay` in the evolution scenarios).

use eventsourcing::domain::{DomainError, SnapshotCodec, Upcaster};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    name: String,
}

fn v2_to_v3(mut value: serde_json::Value) -> Result<serde_json::Value, String> {
    let name = value["title"].take();
    Ok(serde_json::json!({ "name": name }))
}

static UPCASTERS: [Upcaster; 1] = [Upcaster {
    from_version: 2,
    upcast: v2_to_v3,
}];

#[test]
fn snapshot_codec_upcasts_and_reports_gaps() {
    let codec = SnapshotCodec::<State>::json()
        .version(3)
        .upcasters(&UPCASTERS);
    let state = codec
        .decode("Thing", 2, br#"{"title":"x"}"#)
        .expect("v2 upcasts");
    assert_eq!(state.name, "x");
    assert!(matches!(
        codec.decode("Thing", 1, br#"{"old":1}"#),
        Err(DomainError::MissingUpcaster {
            from_version: 1,
            current_version: 3,
            ..
        })
    ));
    assert!(matches!(
        codec.decode("Thing", 4, br#"{"name":"y"}"#),
        Err(DomainError::FutureVersion { .. })
    ));
}
