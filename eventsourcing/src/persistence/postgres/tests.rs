//! Edge cases of the folded version check and insert (one statement, autocommit for a single
//! chunk) and of the streamed reads, in both ordering modes. Skipped without
//! `EVENTSOURCING_TEST_POSTGRES_URL`; each test uses its own schema, dropped afterwards.

use crate::persistence::Conflict;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use super::append::CHUNK_ROWS;
use super::*;
use crate::domain::Metadata;

fn recorders(name: &str) -> Vec<PostgresRecorder> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Ok(url) = std::env::var("EVENTSOURCING_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED {name}: EVENTSOURCING_TEST_POSTGRES_URL is not set");
        return Vec::new();
    };
    [OrderingMode::TransactionId, OrderingMode::TableLock]
        .into_iter()
        .map(|mode| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let schema = format!("es_unit_{}_{n}_{}", std::process::id(), mode.name());
            let config = PostgresConfig::new(url.clone())
                .schema(schema)
                .ordering(mode)
                .drop_schema_on_drop_for_testing();
            PostgresRecorder::open(config).expect("open")
        })
        .collect()
}

fn event(stream_id: &str, version: u64) -> StoredEvent {
    StoredEvent {
        stream_id: stream_id.to_owned(),
        version,
        topic: "Unit.Happened".to_owned(),
        schema_version: 1,
        payload: format!(r#"{{"v":{version}}}"#).into_bytes(),
        metadata: Metadata::new(),
        position: None,
    }
}

fn append(stream_id: &str, expected_version: u64, count: u64) -> StreamAppend {
    StreamAppend {
        stream_id: stream_id.to_owned(),
        expected_version,
        events: (1..=count)
            .map(|i| event(stream_id, expected_version + i))
            .collect(),
    }
}

fn conflict(error: PersistenceError) -> (String, u64, u64) {
    match error {
        PersistenceError::Conflict(Conflict {
            stream_id,
            expected,
            actual,
        }) => (stream_id, expected, actual),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn count(recorder: &PostgresRecorder, stream_id: &str) -> usize {
    recorder
        .select_events(stream_id, &EventQuery::all())
        .expect("select")
        .len()
}

#[test]
fn conflicts_are_exact_and_first_in_batch_order() {
    for r in recorders("conflicts_are_exact_and_first_in_batch_order") {
        r.append(&[append("a", 0, 2), append("b", 0, 3)], None)
            .expect("append");
        // Both b and a are stale: b comes first in the batch.
        let error = r
            .append(
                &[append("c", 0, 1), append("b", 1, 1), append("a", 0, 1)],
                None,
            )
            .expect_err("stale");
        assert_eq!(conflict(error), ("b".to_owned(), 1, 3));
        assert_eq!(count(&r, "c"), 0, "nothing written on conflict");
        // A stream asserted without new events is checked too.
        let error = r
            .append(&[append("c", 0, 1), append("a", 1, 0)], None)
            .expect_err("a is at 2");
        assert_eq!(conflict(error), ("a".to_owned(), 1, 2));
        assert_eq!(count(&r, "c"), 0);
        assert!(r
            .append(&[append("a", 2, 0)], None)
            .expect("assert")
            .is_empty());
        let error = r.append(&[append("a", 3, 0)], None).expect_err("a is at 2");
        assert_eq!(conflict(error), ("a".to_owned(), 3, 2));
    }
}

#[test]
fn multi_chunk_appends_are_atomic_and_ordered() {
    for r in recorders("multi_chunk_appends_are_atomic_and_ordered") {
        r.append(&[append("b", 0, 1)], None).expect("append");
        let rows = u64::try_from(CHUNK_ROWS).expect("chunk") * 2 + 500;
        // The conflicting stream comes after the big one: nothing of the big one is written.
        let error = r
            .append(&[append("big", 0, rows), append("b", 0, 1)], None)
            .expect_err("b is at 1");
        assert_eq!(conflict(error), ("b".to_owned(), 0, 1));
        assert_eq!(count(&r, "big"), 0);
        let positions = r
            .append(&[append("big", 0, rows), append("b", 1, 1)], None)
            .expect("append");
        assert_eq!(positions.len(), usize::try_from(rows + 1).expect("rows"));
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "batch order");
        let stored = r.select_events("big", &EventQuery::all()).expect("select");
        let stored: Vec<u64> = stored.iter().filter_map(|e| e.position).collect();
        assert_eq!(stored, positions[..positions.len() - 1]);
    }
}

#[test]
fn tracking_conflict_comes_before_already_tracked() {
    for r in recorders("tracking_conflict_comes_before_already_tracked") {
        let tracking = Tracking::new("up", 5);
        r.append(&[append("a", 0, 1)], Some(&tracking))
            .expect("append");
        let error = r
            .append(&[append("a", 0, 1)], Some(&tracking))
            .expect_err("stale and tracked");
        assert_eq!(conflict(error), ("a".to_owned(), 0, 1));
        let error = r
            .append(&[append("a", 1, 1)], Some(&tracking))
            .expect_err("tracked");
        assert!(
            matches!(error, PersistenceError::AlreadyTracked { position: 5, .. }),
            "{error:?}"
        );
        assert_eq!(count(&r, "a"), 1, "nothing written");
        assert_eq!(r.max_tracking_position("up").expect("max"), Some(5));
    }
}

#[test]
fn streamed_reads_stop_early_and_keep_the_connection_usable() {
    for r in recorders("streamed_reads_stop_early_and_keep_the_connection_usable") {
        let mut a = append("a", 0, 50);
        a.events[3].metadata.user.insert("k".into(), "v".into());
        a.events[3].metadata.causation_id = Some(Uuid::now_v7());
        r.append(&[a.clone()], None).expect("append");
        for _ in 0..20 {
            let mut seen = Vec::new();
            r.for_each_event("a", &EventQuery::all(), &mut |e| {
                seen.push(e.into_owned());
                if seen.len() == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("visit");
            assert_eq!(seen.len(), 5);
            let mut expected: Vec<StoredEvent> = a.events[..5].to_vec();
            for (e, s) in expected.iter_mut().zip(&seen) {
                e.position = s.position;
            }
            assert_eq!(seen, expected, "round trip, metadata included");
        }
        let all = r
            .select_notifications(&NotificationQuery::new(1, 1000))
            .expect("notifications");
        assert_eq!(all.len(), 50);
        assert_eq!(all[3].metadata, a.events[3].metadata);
        let by_id = r
            .event_by_id(a.events[3].metadata.event_id)
            .expect("by id")
            .expect("found");
        assert_eq!(by_id.metadata, a.events[3].metadata);
    }
}
