//! The recorder conformance suite: one set of checks that every storage backend must pass.
//!
//! A backend's test file supplies only a constructor returning a fresh, empty store and
//! invokes [`recorder_conformance!`](crate::recorder_conformance):
//!
//! ```ignore
//! fn fresh() -> Option<Arc<dyn Storage>> { Some(Arc::new(MemoryRecorder::new())) }
//! eventsourcing_testkit::recorder_conformance!(fresh);
//! ```
//!
//! `None` from the constructor means the backend is unavailable here (a skip that the
//! constructor has already reported loudly).

use eventsourcing::Conflict;
use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::domain::{Metadata, Timestamp};
use eventsourcing::persistence::{
    EventQuery, NotificationQuery, PersistenceError, Storage, StoredEvent, StoredSnapshot,
    StreamAppend, Tracking,
};
use uuid::Uuid;

/// A store under test.
pub type Store = Arc<dyn Storage>;

/// A stored event for tests, with a small JSON payload.
#[must_use]
pub fn event(stream_id: &str, version: u64, topic: &str) -> StoredEvent {
    StoredEvent {
        stream_id: stream_id.to_owned(),
        version,
        topic: topic.to_owned(),
        schema_version: 1,
        payload: format!(r#"{{"stream":"{stream_id}","version":{version}}}"#).into_bytes(),
        metadata: Metadata::new(),
        position: None,
    }
}

/// An append of `count` new events to `stream_id`, expecting `expected_version`.
#[must_use]
pub fn append(stream_id: &str, expected_version: u64, count: u64) -> StreamAppend {
    StreamAppend {
        stream_id: stream_id.to_owned(),
        expected_version,
        events: (1..=count)
            .map(|i| event(stream_id, expected_version + i, "Test.Happened"))
            .collect(),
    }
}

fn new_stream() -> String {
    Uuid::now_v7().to_string()
}

fn versions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

/// Whether the store keeps a global log (positions, notifications, tracking records). The
/// memory and SQL stores do; a store that answers [`PersistenceError::Unsupported`]
/// (Cassandra) does not, and the checks then require that typed refusal, with nothing
/// written, instead of the log's behaviour.
#[must_use]
pub fn has_global_log<S: eventsourcing::persistence::ApplicationRecorder + ?Sized>(
    store: &S,
) -> bool {
    match store.max_position() {
        Ok(_) => true,
        Err(PersistenceError::Unsupported { .. }) => false,
        Err(other) => panic!("max_position failed: {other}"),
    }
}

/// Asserts that `result` is the typed refusal of a store without a global log.
fn assert_unsupported<T: std::fmt::Debug>(result: Result<T, PersistenceError>, what: &str) {
    match result {
        Err(PersistenceError::Unsupported { .. }) => {}
        other => panic!("{what}: expected PersistenceError::Unsupported, got {other:?}"),
    }
}

/// The log's maximum position, or 0 on a store without a log.
fn max_position_or_zero(store: &Store) -> u64 {
    if has_global_log(store) {
        store.max_position().expect("max")
    } else {
        0
    }
}

fn all_notifications(store: &Store) -> Vec<StoredEvent> {
    if !has_global_log(store) {
        return Vec::new();
    }
    store
        .select_notifications(&NotificationQuery::new(1, usize::MAX >> 1))
        .expect("select notifications")
}

/// Appending to a new stream, then reading it back, gives identical events with positions.
pub fn append_and_select(store: &Store) {
    let stream = new_stream();
    let batch = append(&stream, 0, 3);
    let positions = store
        .append(std::slice::from_ref(&batch), None)
        .expect("append");
    if !has_global_log(store) {
        assert!(positions.is_empty(), "no log, no positions: {positions:?}");
        let stored = store
            .select_events(&stream, &EventQuery::all())
            .expect("select");
        let written: Vec<StoredEvent> = batch.events.clone();
        assert_eq!(
            stored, written,
            "events read back exactly, without positions"
        );
        return;
    }
    assert_eq!(positions.len(), 3);
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase: {positions:?}"
    );
    let stored = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(versions(&stored), vec![1, 2, 3]);
    for ((read, written), position) in stored.iter().zip(&batch.events).zip(&positions) {
        assert_eq!(read.stream_id, written.stream_id);
        assert_eq!(read.topic, written.topic);
        assert_eq!(read.schema_version, written.schema_version);
        assert_eq!(read.payload, written.payload);
        assert_eq!(read.metadata, written.metadata);
        assert_eq!(read.position, Some(*position));
    }
    assert!(store
        .select_events(&new_stream(), &EventQuery::all())
        .expect("select")
        .is_empty());
}

/// Version ranges, descending order and limits.
pub fn select_ranges(store: &Store) {
    let stream = new_stream();
    store
        .append(&[append(&stream, 0, 10)], None)
        .expect("append");
    let select = |q: EventQuery| versions(&store.select_events(&stream, &q).expect("select"));
    assert_eq!(select(EventQuery::all().from_version(8)), vec![8, 9, 10]);
    assert_eq!(select(EventQuery::all().to_version(2)), vec![1, 2]);
    assert_eq!(
        select(EventQuery::all().from_version(3).to_version(5)),
        vec![3, 4, 5]
    );
    assert_eq!(
        select(EventQuery::all().descending().limit(3)),
        vec![10, 9, 8]
    );
    assert_eq!(
        select(EventQuery::all().to_version(5).descending().limit(2)),
        vec![5, 4]
    );
    assert_eq!(
        select(EventQuery::all().from_version(4).limit(2)),
        vec![4, 5]
    );
    assert_eq!(
        select(EventQuery::all().from_version(11)),
        Vec::<u64>::new()
    );
    assert_eq!(select(EventQuery::all().limit(0)), Vec::<u64>::new());
}

/// A stale expected version is a typed conflict naming the stream and both versions, and
/// writes nothing.
pub fn conflict_writes_nothing(store: &Store) {
    let stream = new_stream();
    store
        .append(&[append(&stream, 0, 2)], None)
        .expect("append");
    let before = max_position_or_zero(store);
    let error = store
        .append(&[append(&stream, 1, 1)], None)
        .expect_err("stale append must fail");
    match error {
        PersistenceError::Conflict(Conflict {
            stream_id,
            expected,
            actual,
        }) => {
            assert_eq!(stream_id, stream);
            assert_eq!(expected, 1);
            assert_eq!(actual, 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let error = store
        .append(&[append(&new_stream(), 3, 1)], None)
        .expect_err("missing stream");
    assert!(error.is_conflict(), "{error:?}");
    // Behind: the stream holds 2 events and the writer expects 5; writing version 6 would
    // leave a gap.
    match store.append(&[append(&stream, 5, 1)], None) {
        Err(PersistenceError::Conflict(Conflict {
            expected, actual, ..
        })) => assert_eq!((expected, actual), (5, 2)),
        other => panic!("expected a conflict for a stream behind, got {other:?}"),
    }
    assert_eq!(max_position_or_zero(store), before);
    assert_eq!(
        store
            .select_events(&stream, &EventQuery::all())
            .expect("select")
            .len(),
        2
    );
}

/// A batch over several streams is atomic: one conflicting stream means no stream is written.
pub fn multi_stream_batch_is_atomic(store: &Store) {
    let (a, b, c) = (new_stream(), new_stream(), new_stream());
    store.append(&[append(&b, 0, 1)], None).expect("append");
    if !has_global_log(store) {
        // Without cross-partition transactions the store refuses the whole batch.
        assert_unsupported(
            store.append(
                &[append(&a, 0, 2), append(&b, 1, 1), append(&c, 0, 1)],
                None,
            ),
            "an append to several streams",
        );
        for (stream, version) in [(&a, 0), (&b, 1), (&c, 0)] {
            let events = store
                .select_events(stream, &EventQuery::all())
                .expect("select");
            assert_eq!(events.len(), version, "nothing written");
        }
        return;
    }
    let before = store.max_position().expect("max");
    let error = store
        .append(
            &[append(&a, 0, 2), append(&b, 0, 1), append(&c, 0, 1)],
            None,
        )
        .expect_err("b is at version 1");
    assert!(error.is_conflict(), "{error:?}");
    assert!(store
        .select_events(&a, &EventQuery::all())
        .expect("select")
        .is_empty());
    assert!(store
        .select_events(&c, &EventQuery::all())
        .expect("select")
        .is_empty());
    assert_eq!(store.max_position().expect("max"), before);
    let positions = store
        .append(
            &[append(&a, 0, 2), append(&b, 1, 1), append(&c, 0, 1)],
            None,
        )
        .expect("append");
    assert_eq!(positions.len(), 4);
    let log = all_notifications(store);
    let tail: Vec<(String, u64)> = log[log.len() - 4..]
        .iter()
        .map(|e| (e.stream_id.clone(), e.version))
        .collect();
    assert_eq!(
        tail,
        vec![(a.clone(), 1), (a, 2), (b, 2), (c, 1)],
        "batch order is position order"
    );
}

/// Batches that break the contract are rejected before anything is written.
pub fn invalid_batches_are_rejected(store: &Store) {
    let stream = new_stream();
    let mut gap = append(&stream, 0, 2);
    gap.events[1].version = 3;
    let empty_id = append("", 0, 1);
    let twice = [append(&stream, 0, 1), append(&stream, 0, 1)];
    for batch in [vec![gap], vec![empty_id], twice.to_vec()] {
        let error = store.append(&batch, None).expect_err("invalid batch");
        assert!(
            matches!(error, PersistenceError::InvalidBatch { .. }),
            "{error:?}"
        );
    }
    assert!(store
        .select_events(&stream, &EventQuery::all())
        .expect("select")
        .is_empty());
    assert_eq!(
        store.append(&[], None).expect("empty batch"),
        Vec::<u64>::new()
    );
    // A stream with no new events still has its expected version checked.
    let error = store
        .append(&[append(&stream, 1, 0)], None)
        .expect_err("stream is at 0");
    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(
        store
            .append(&[append(&stream, 0, 0)], None)
            .expect("version asserted"),
        Vec::<u64>::new()
    );
}

/// Notifications come in position order, from a position, with a limit and topic filter.
pub fn notifications(store: &Store) {
    if !has_global_log(store) {
        assert_unsupported(
            store.select_notifications(&NotificationQuery::new(1, 10)),
            "select_notifications",
        );
        let mut into = Vec::new();
        assert_unsupported(
            store.select_notifications_into(&NotificationQuery::new(1, 10), &mut into),
            "select_notifications_into",
        );
        return;
    }
    assert_eq!(
        store.max_position().expect("max"),
        0,
        "a fresh store is empty"
    );
    let (a, b) = (new_stream(), new_stream());
    let mut first = append(&a, 0, 2);
    first.events[1].topic = "Test.Other".into();
    let positions = store.append(&[first], None).expect("append");
    let more = store.append(&[append(&b, 0, 3)], None).expect("append");
    let all = all_notifications(store);
    assert_eq!(all.len(), 5);
    let all_positions: Vec<u64> = all.iter().map(|e| e.position.expect("position")).collect();
    assert_eq!(all_positions, [positions.clone(), more.clone()].concat());
    assert_eq!(store.max_position().expect("max"), more[2]);

    let page = store
        .select_notifications(&NotificationQuery::new(positions[1], 2))
        .expect("page");
    assert_eq!(
        page.iter()
            .map(|e| e.position.expect("position"))
            .collect::<Vec<_>>(),
        vec![positions[1], more[0]]
    );
    let other = store
        .select_notifications(&NotificationQuery::new(1, 10).topics(["Test.Other"]))
        .expect("topic");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].stream_id, a);
    let both = store
        .select_notifications(
            &NotificationQuery::new(1, 10).topics(["Test.Other", "Test.Happened"]),
        )
        .expect("topics");
    assert_eq!(both.len(), 5);
    let bounded = store
        .select_notifications(&NotificationQuery::new(1, 10).to_position(positions[1]))
        .expect("bounded");
    assert_eq!(bounded.len(), 2);
    let beyond = store
        .select_notifications(&NotificationQuery::new(more[2] + 1, 10))
        .expect("beyond");
    assert!(beyond.is_empty());
}

/// One event by its id; unknown ids give `None`.
pub fn event_by_id(store: &Store) {
    let stream = new_stream();
    let batch = append(&stream, 0, 2);
    let id = batch.events[1].metadata.event_id;
    store.append(&[batch], None).expect("append");
    let found = store.event_by_id(id).expect("by id").expect("found");
    assert_eq!(
        (found.stream_id.as_str(), found.version),
        (stream.as_str(), 2)
    );
    assert_eq!(found.position.is_some(), has_global_log(store));
    assert_eq!(
        found,
        store
            .select_events(&stream, &EventQuery::all())
            .expect("select")[1]
    );
    assert!(store.event_by_id(Uuid::now_v7()).expect("by id").is_none());
}

/// Deleting a stream removes its events (and snapshots) only; the stream can start again.
pub fn delete_stream(store: &Store) {
    let (a, b) = (new_stream(), new_stream());
    store.append(&[append(&a, 0, 3)], None).expect("append");
    store.append(&[append(&b, 0, 1)], None).expect("append");
    store.put_snapshot(&snapshot(&a, 2)).expect("snapshot");
    let id = store.select_events(&a, &EventQuery::all()).expect("select")[0]
        .metadata
        .event_id;
    assert_eq!(store.delete_stream(&a).expect("delete"), 3);
    assert!(store
        .select_events(&a, &EventQuery::all())
        .expect("select")
        .is_empty());
    assert!(store.event_by_id(id).expect("by id").is_none());
    assert!(
        store.latest_snapshot(&a, None).expect("snapshot").is_none(),
        "snapshots go too"
    );
    assert!(all_notifications(store).iter().all(|e| e.stream_id != a));
    assert_eq!(
        store
            .select_events(&b, &EventQuery::all())
            .expect("select")
            .len(),
        1
    );
    assert_eq!(store.delete_stream(&a).expect("delete again"), 0);
    store
        .append(&[append(&a, 0, 1)], None)
        .expect("a deleted stream starts again at version 1");
    if has_global_log(store) {
        // Deleting the stream that holds the log's last events: the highest position is the
        // last event left, and a new append still goes above every position handed out.
        let before = max_position_or_zero(store);
        let tail = new_stream();
        let tail_positions = store.append(&[append(&tail, 0, 2)], None).expect("append");
        assert_eq!(store.delete_stream(&tail).expect("delete"), 2);
        assert_eq!(
            max_position_or_zero(store),
            before,
            "the deleted tail is gone"
        );
        let next = store
            .append(&[append(&new_stream(), 0, 1)], None)
            .expect("append");
        assert!(
            next[0] > tail_positions[1],
            "positions are not given again: {next:?} after {tail_positions:?}"
        );
    }
}

/// Stored events can be rewritten in place (schema migration); positions stay.
pub fn update_in_place(store: &Store) {
    let stream = new_stream();
    store
        .append(&[append(&stream, 0, 3)], None)
        .expect("append");
    let mut events = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    let positions: Vec<_> = events.iter().map(|e| e.position).collect();
    for e in &mut events[..2] {
        e.topic = "Test.Renamed".into();
        e.schema_version = 2;
        e.payload = br#"{"migrated":true}"#.to_vec();
        e.metadata.user.insert("migrated".into(), "yes".into());
    }
    store.update_events(&events[..2]).expect("update");
    let read = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    assert_eq!(read[..2], events[..2]);
    assert_eq!(read[2].topic, "Test.Happened");

    let mut missing = events[2].clone();
    missing.version = 99;
    let mut changed = events[2].clone();
    changed.payload = b"{}".to_vec();
    let error = store
        .update_events(&[changed, missing])
        .expect_err("missing event");
    assert!(
        matches!(error, PersistenceError::EventNotFound { version: 99, .. }),
        "{error:?}"
    );
    let after = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(
        after[2].payload, events[2].payload,
        "a failed update changes nothing"
    );
    // Compare and swap: a replacement for an event that is no longer the stored one (the
    // stream was deleted and written again since it was read) changes nothing.
    let mut stale = after[2].clone();
    stale.metadata.event_id = Uuid::now_v7();
    stale.payload = b"{\"stale\":true}".to_vec();
    let error = store
        .update_events(&[stale])
        .expect_err("another event now");
    assert!(
        matches!(error, PersistenceError::EventNotFound { version: 3, .. }),
        "{error:?}"
    );
    assert_eq!(
        store
            .select_events(&stream, &EventQuery::all())
            .expect("select")[2],
        after[2],
        "the stored event is not overwritten"
    );
}

/// Tracking records commit with the events and reject a second record of a position.
pub fn tracking(store: &Store) {
    let upstream = format!("upstream-{}", Uuid::now_v7());
    if !has_global_log(store) {
        let stream = new_stream();
        let t = Tracking::new(upstream.clone(), 5);
        assert_unsupported(
            store.append(&[append(&stream, 0, 1)], Some(&t)),
            "append with a tracking record",
        );
        assert_unsupported(
            store.max_tracking_position(&upstream),
            "max_tracking_position",
        );
        assert!(
            store
                .select_events(&stream, &EventQuery::all())
                .expect("select")
                .is_empty(),
            "nothing written"
        );
        return;
    }
    assert_eq!(
        store.max_tracking_position(&upstream).expect("tracking"),
        None
    );
    let stream = new_stream();
    let t = |position| Tracking::new(upstream.clone(), position);
    store
        .append(&[append(&stream, 0, 1)], Some(&t(5)))
        .expect("tracked");
    store
        .append(&[], Some(&t(6)))
        .expect("tracking with no events");
    assert_eq!(
        store.max_tracking_position(&upstream).expect("tracking"),
        Some(6)
    );
    // A page reaching back to a tracked position (another instance processed part of it).
    let error = store
        .append(
            &[append(&stream, 1, 1)],
            Some(&Tracking::page(upstream.clone(), 3, 8)),
        )
        .expect_err("position 6 is inside the page");
    assert!(
        matches!(error, PersistenceError::AlreadyTracked { .. }),
        "{error:?}"
    );
    assert_eq!(
        store.max_tracking_position(&upstream).expect("tracking"),
        Some(6),
        "the page tracks nothing"
    );
    let before = store.max_position().expect("max");
    let error = store
        .append(&[append(&stream, 1, 1)], Some(&t(5)))
        .expect_err("position 5 was processed");
    assert!(
        matches!(error, PersistenceError::AlreadyTracked { position: 5, .. }),
        "{error:?}"
    );
    assert_eq!(
        store.max_position().expect("max"),
        before,
        "nothing written"
    );
    let error = store
        .append(&[append(&stream, 0, 1)], Some(&t(7)))
        .expect_err("conflict");
    assert!(error.is_conflict());
    assert_eq!(
        store.max_tracking_position(&upstream).expect("tracking"),
        Some(6),
        "conflict tracks nothing"
    );
    assert_eq!(
        store
            .max_tracking_position("someone-else")
            .expect("tracking"),
        None
    );
    for upstream in ["", "nul\0name"] {
        let bad = Tracking::new(upstream, 1);
        let error = store
            .append(&[append(&stream, 1, 1)], Some(&bad))
            .expect_err("invalid upstream name");
        assert!(
            matches!(error, PersistenceError::InvalidBatch { .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        store.max_position().expect("max"),
        before,
        "nothing written"
    );
}

/// Metadata and binary payloads survive exactly.
pub fn round_trips_exactly(store: &Store) {
    let stream = new_stream();
    let mut e = event(&stream, 1, "Test.Binary");
    e.payload = (0u8..=255).collect();
    e.schema_version = 7;
    e.metadata = Metadata {
        event_id: Uuid::now_v7(),
        timestamp: Timestamp::from_micros(1_700_000_000_123_456),
        causation_id: Some(Uuid::now_v7()),
        correlation_id: Some(Uuid::now_v7()),
        user: BTreeMap::from([
            ("user".to_owned(), "alice".to_owned()),
            ("quote".to_owned(), "it's; DROP TABLE x; -- %_".to_owned()),
        ]),
    };
    store
        .append(
            &[StreamAppend {
                stream_id: stream.clone(),
                expected_version: 0,
                events: vec![e.clone()],
            }],
            None,
        )
        .expect("append");
    let mut read = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    let read = read.remove(0);
    assert_eq!(read.payload, e.payload);
    assert_eq!(read.metadata, e.metadata);
    assert_eq!(read.schema_version, 7);
}

/// Identifiers above the documented maximum length are one typed error on every backend,
/// before any I/O; version arithmetic at the edge of `u64` is a typed error, never a panic.
pub fn oversized_identifiers_are_rejected(store: &Store) {
    use eventsourcing::persistence::MAX_IDENTIFIER_BYTES;
    let long = "x".repeat(MAX_IDENTIFIER_BYTES + 1);
    let at_limit = "y".repeat(MAX_IDENTIFIER_BYTES);
    store
        .append(&[append(&at_limit, 0, 1)], None)
        .expect("an id at the limit is fine");
    let mut long_topic = append(&new_stream(), 0, 1);
    long_topic.events[0].topic.clone_from(&long);
    for batch in [append(&long, 0, 1), long_topic.clone()] {
        let error = store.append(&[batch], None).expect_err("too long");
        assert!(
            matches!(
                error,
                PersistenceError::LimitExceeded { limit, .. } if limit == MAX_IDENTIFIER_BYTES as u64
            ),
            "{error:?}"
        );
    }
    assert!(store
        .select_events(&long_topic.stream_id, &EventQuery::all())
        .expect("select")
        .is_empty());
    let mut edge = append(&new_stream(), u64::MAX - 1, 0);
    edge.events = vec![event(&edge.stream_id, u64::MAX, "Test.Happened")];
    edge.events.push(event(&edge.stream_id, 0, "Test.Happened"));
    let error = store
        .append(&[edge], None)
        .expect_err("versions past u64::MAX");
    assert!(
        matches!(error, PersistenceError::InvalidBatch { .. }),
        "{error:?}"
    );
}

/// Stream ids and topics made to break SQL and LIKE patterns are only values.
pub fn hostile_identifiers(store: &Store) {
    let ids = [
        "'; DROP TABLE events; --".to_owned(),
        "%".to_owned(),
        "_".to_owned(),
        "a\"b\\c".to_owned(),
        "ünïcødé ✓".to_owned(),
        "x".repeat(1000),
    ];
    for id in &ids {
        let mut batch = append(id, 0, 2);
        batch.events[0].topic = format!("{id}%_'\"");
        store.append(&[batch], None).expect("append hostile");
    }
    for id in &ids {
        let read = store.select_events(id, &EventQuery::all()).expect("select");
        assert_eq!(versions(&read), vec![1, 2], "stream {id:?}");
        assert_eq!(read[0].topic, format!("{id}%_'\""));
        if !has_global_log(store) {
            continue;
        }
        let by_topic = store
            .select_notifications(&NotificationQuery::new(1, 100).topics([read[0].topic.clone()]))
            .expect("topic");
        assert_eq!(
            by_topic.len(),
            1,
            "topic filters match exactly, not as patterns"
        );
    }
    assert!(
        store
            .select_events("%", &EventQuery::all())
            .expect("select")
            .len()
            == 2
    );
    assert_eq!(store.delete_stream("_").expect("delete"), 2);
    assert_eq!(
        store
            .select_events("%", &EventQuery::all())
            .expect("select")
            .len(),
        2
    );
}

fn snapshot(stream: &str, version: u64) -> StoredSnapshot {
    StoredSnapshot {
        stream_id: stream.to_owned(),
        version,
        topic: "Test".into(),
        schema_version: 1,
        state: format!(r#"{{"version":{version}}}"#).into_bytes(),
        created_on: Timestamp::from_micros(1),
        modified_on: Timestamp::from_micros(version.try_into().unwrap_or(i64::MAX)),
    }
}

/// Snapshots: newest at or below a version, replace on the same version, delete.
pub fn snapshots(store: &Store) {
    let stream = new_stream();
    assert!(store
        .latest_snapshot(&stream, None)
        .expect("latest")
        .is_none());
    for version in [5, 10, 20] {
        store
            .put_snapshot(&snapshot(&stream, version))
            .expect("put");
    }
    let latest = |at| {
        store
            .latest_snapshot(&stream, at)
            .expect("latest")
            .map(|s| s.version)
    };
    assert_eq!(latest(None), Some(20));
    assert_eq!(latest(Some(19)), Some(10));
    assert_eq!(latest(Some(10)), Some(10));
    assert_eq!(latest(Some(4)), None);
    let mut replaced = snapshot(&stream, 10);
    replaced.state = b"{\"replaced\":true}".to_vec();
    store.put_snapshot(&replaced).expect("replace");
    assert_eq!(
        store.latest_snapshot(&stream, Some(10)).expect("latest"),
        Some(replaced)
    );
    assert_eq!(store.delete_snapshots(&stream).expect("delete"), 3);
    assert_eq!(latest(None), None);
}

/// N threads append at the same version of one stream, round after round: exactly one wins
/// each round, the losers get conflicts, and the stream ends with one event per round.
pub fn concurrent_writers_one_stream(store: &Store) {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 15;
    let stream = new_stream();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (store, stream, barrier) =
                    (Arc::clone(store), stream.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    store.append(&[append(&stream, round, 1)], None)
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one writer wins: {results:?}"
        );
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok() || r.as_ref().is_err_and(PersistenceError::is_conflict)));
    }
    let read = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(versions(&read), (1..=ROUNDS).collect::<Vec<_>>());
}

/// M threads append to their own streams while a follower reads the log by position: the
/// follower sees every event exactly once, in increasing position, and never skips one that
/// commits later with a lower position.
pub fn concurrent_writers_gap_free(store: &Store) {
    const WRITERS: usize = 4;
    const BATCHES: u64 = 40;
    if !has_global_log(store) {
        // No log to follow (`notifications` checks the typed refusal): writers on their own
        // streams, and a reader that must only ever see whole appends.
        concurrent_writers_whole_appends(store, WRITERS, BATCHES);
        return;
    }
    let start = store.max_position().expect("max") + 1;
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, done) = (Arc::clone(store), Arc::clone(&done));
        thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next = start;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store
                    .select_notifications(&NotificationQuery::new(next, 50))
                    .expect("follow");
                for e in &page {
                    let position = e.position.expect("position");
                    assert!(position >= next, "out of order: {position} after {next}");
                    next = position + 1;
                    seen.push((e.stream_id.clone(), e.version, position));
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = Arc::clone(store);
            thread::spawn(move || {
                let stream = new_stream();
                for batch in 0..BATCHES {
                    store
                        .append(&[append(&stream, batch * 2, 2)], None)
                        .expect("append");
                }
                stream
            })
        })
        .collect();
    let streams: Vec<String> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("follower");
    let total = WRITERS * usize::try_from(BATCHES * 2).expect("small");
    let mine: Vec<_> = seen
        .iter()
        .filter(|(s, _, _)| streams.contains(s))
        .collect();
    assert_eq!(mine.len(), total, "follower saw every event exactly once");
    let unique: HashSet<_> = mine.iter().map(|(s, v, _)| (s.clone(), *v)).collect();
    assert_eq!(unique.len(), total, "no duplicates");
    let all = all_notifications(store);
    let logged: Vec<u64> = all
        .iter()
        .filter_map(|e| e.position)
        .filter(|p| *p >= start)
        .collect();
    let followed: Vec<u64> = seen.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(
        followed, logged,
        "the follower's view equals the final log: nothing skipped"
    );
}

/// `writers` threads append `batches` appends of two events each to their own streams while a
/// reader reads the streams: every read is a prefix of whole appends (an even number of
/// contiguous versions), and every stream ends complete.
fn concurrent_writers_whole_appends(store: &Store, writers: usize, batches: u64) {
    let streams: Vec<String> = (0..writers).map(|_| new_stream()).collect();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done, streams) = (Arc::clone(store), Arc::clone(&done), streams.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::SeqCst) {
                for stream in &streams {
                    let read = store
                        .select_events(stream, &EventQuery::all())
                        .expect("select");
                    let got = versions(&read);
                    let n = got.len() as u64;
                    assert_eq!(got, (1..=n).collect::<Vec<_>>(), "contiguous versions");
                    assert_eq!(n % 2, 0, "a torn append is visible: {n} events");
                    reads += 1;
                }
            }
            reads
        })
    };
    let handles: Vec<_> = streams
        .iter()
        .cloned()
        .map(|stream| {
            let store = Arc::clone(store);
            thread::spawn(move || {
                for b in 0..batches {
                    store
                        .append(&[append(&stream, b * 2, 2)], None)
                        .expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.join().expect("reader") > 0, "the reader read");
    for stream in &streams {
        let read = store
            .select_events(stream, &EventQuery::all())
            .expect("select");
        assert_eq!(read.len() as u64, batches * 2, "every append landed");
    }
}

fn expect_conflict(error: PersistenceError) -> (String, u64, u64) {
    match error {
        PersistenceError::Conflict(Conflict {
            stream_id,
            expected,
            actual,
        }) => (stream_id, expected, actual),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn stored_count(store: &Store, stream_id: &str) -> usize {
    store
        .select_events(stream_id, &EventQuery::all())
        .expect("select")
        .len()
}

/// A conflict names the first stale stream in batch order with its exact versions, also for
/// a stream asserted without new events; nothing of the batch is written.
pub fn conflicts_are_exact_and_first_in_batch_order(store: &Store) {
    let (a, b, c) = (new_stream(), new_stream(), new_stream());
    if !has_global_log(store) {
        // One stream an append: the exact conflict and the version assertion only.
        store.append(&[append(&a, 0, 2)], None).expect("append");
        let error = store
            .append(&[append(&a, 1, 1)], None)
            .expect_err("a is at 2");
        assert_eq!(expect_conflict(error), (a.clone(), 1, 2));
        let error = store
            .append(&[append(&a, 3, 0)], None)
            .expect_err("a is at 2");
        assert_eq!(expect_conflict(error), (a.clone(), 3, 2));
        assert_eq!(stored_count(store, &a), 2);
        return;
    }
    store
        .append(&[append(&a, 0, 2), append(&b, 0, 3)], None)
        .expect("append");
    // Both b and a are stale: b comes first in the batch.
    let error = store
        .append(
            &[append(&c, 0, 1), append(&b, 1, 1), append(&a, 0, 1)],
            None,
        )
        .expect_err("stale");
    assert_eq!(expect_conflict(error), (b.clone(), 1, 3));
    assert_eq!(stored_count(store, &c), 0, "nothing written on conflict");
    // A stream asserted without new events is checked too.
    let error = store
        .append(&[append(&c, 0, 1), append(&a, 1, 0)], None)
        .expect_err("a is at 2");
    assert_eq!(expect_conflict(error), (a.clone(), 1, 2));
    assert_eq!(stored_count(store, &c), 0);
    assert!(store
        .append(&[append(&a, 2, 0)], None)
        .expect("assert")
        .is_empty());
    let error = store
        .append(&[append(&a, 3, 0)], None)
        .expect_err("a is at 2");
    assert_eq!(expect_conflict(error), (a, 3, 2));
}

/// An append of 2,500 events (more than a backend's statement or chunk size, typically)
/// followed by a stale stream writes nothing; the same append with the right version writes
/// every event, with positions in batch order.
pub fn large_appends_are_atomic_and_ordered(store: &Store) {
    if !has_global_log(store) {
        // Several streams in one append are refused (checked elsewhere), and a store without
        // a log may bound one append below 2,500 events (Cassandra's buckets).
        return;
    }
    let (big, b) = (new_stream(), new_stream());
    store.append(&[append(&b, 0, 1)], None).expect("append");
    let rows = 2_500;
    let error = store
        .append(&[append(&big, 0, rows), append(&b, 0, 1)], None)
        .expect_err("b is at 1");
    assert_eq!(expect_conflict(error), (b.clone(), 0, 1));
    assert_eq!(stored_count(store, &big), 0, "nothing of the big stream");
    let positions = store
        .append(&[append(&big, 0, rows), append(&b, 1, 1)], None)
        .expect("append");
    assert_eq!(positions.len() as u64, rows + 1);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "batch order");
    let stored: Vec<u64> = store
        .select_events(&big, &EventQuery::all())
        .expect("select")
        .iter()
        .filter_map(|e| e.position)
        .collect();
    assert_eq!(stored, positions[..positions.len() - 1]);
}

/// A stale append with a tracking record already recorded is a conflict (the stream's state
/// is what the writer must reload); a current one is `AlreadyTracked`; nothing is written.
pub fn a_conflict_comes_before_already_tracked(store: &Store) {
    if !has_global_log(store) {
        return; // tracking records are refused (checked by `tracking`)
    }
    let a = new_stream();
    let tracking = Tracking::new(format!("up-{a}"), 5);
    store
        .append(&[append(&a, 0, 1)], Some(&tracking))
        .expect("append");
    let error = store
        .append(&[append(&a, 0, 1)], Some(&tracking))
        .expect_err("stale and tracked");
    assert_eq!(expect_conflict(error), (a.clone(), 0, 1));
    let error = store
        .append(&[append(&a, 1, 1)], Some(&tracking))
        .expect_err("tracked");
    assert!(
        matches!(error, PersistenceError::AlreadyTracked { position: 5, .. }),
        "{error:?}"
    );
    assert_eq!(stored_count(store, &a), 1, "nothing written");
    assert_eq!(
        store
            .max_tracking_position(&tracking.upstream)
            .expect("max"),
        Some(5)
    );
}

/// A visitor that breaks early gets exactly the events it saw, metadata included, and the
/// store stays usable afterwards (a backend streaming rows must not leave a connection
/// half-read), twenty times over.
pub fn visiting_stops_early_and_the_store_stays_usable(store: &Store) {
    let stream = new_stream();
    let mut batch = append(&stream, 0, 50);
    batch.events[3].metadata.user.insert("k".into(), "v".into());
    batch.events[3].metadata.causation_id = Some(Uuid::now_v7());
    // In appends of 10 (the smallest bucket a store under test may use).
    for chunk in batch.events.chunks(10) {
        let part = StreamAppend {
            stream_id: stream.clone(),
            expected_version: chunk[0].version - 1,
            events: chunk.to_vec(),
        };
        store.append(&[part], None).expect("append");
    }
    for _ in 0..20 {
        let mut seen = Vec::new();
        store
            .for_each_event(&stream, &EventQuery::all(), &mut |e| {
                seen.push(e.into_owned());
                if seen.len() == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("visit");
        let mut expected = batch.events[..5].to_vec();
        for (e, s) in expected.iter_mut().zip(&seen) {
            e.position = s.position;
        }
        assert_eq!(seen, expected, "round trip, metadata included");
    }
    assert_eq!(stored_count(store, &stream), 50);
}

/// `select_notifications_into` appends after what the vector already holds (the limit counts
/// only the new events) exactly what `select_notifications` returns.
pub fn notifications_into_keep_what_the_vector_held(store: &Store) {
    if !has_global_log(store) {
        return; // the log is refused (checked by `notifications`)
    }
    let stream = new_stream();
    let from = store.max_position().expect("max") + 1;
    let mut batch = append(&stream, 0, 9);
    for event in &mut batch.events {
        event.topic = format!("T.{}", event.version);
    }
    store.append(&[batch], None).expect("append");
    let queries = [
        NotificationQuery::new(from, 100),
        NotificationQuery::new(from, 4),
        NotificationQuery::new(from + 2, 4).to_position(from + 4),
        NotificationQuery::new(from + 1, 3).topics(["T.2", "T.5", "T.6"]),
        NotificationQuery::new(from, 0),
        NotificationQuery::new(from + 20, 5),
        NotificationQuery::new(u64::MAX, 5),
    ];
    for query in queries {
        let selected = store.select_notifications(&query).expect("select");
        let mut into = store
            .select_notifications(&NotificationQuery::new(from, 1))
            .expect("first");
        let kept = into.clone();
        store
            .select_notifications_into(&query, &mut into)
            .expect("select into");
        assert_eq!(&into[..kept.len()], &kept[..], "{query:?}");
        assert_eq!(&into[kept.len()..], &selected[..], "{query:?}");
    }
}

/// Leases: taken when free, released or expired (a new epoch each time), renewed by their
/// holder, refused to others; a commit fenced by a lease is written only while the lease is
/// held at its epoch, and a fenced commit writes nothing. A store without leases
/// ([`ProcessRecorder::leases`](eventsourcing::persistence::ProcessRecorder::leases) is
/// `None`) passes trivially: nothing can hand out a lease it would have to check.
pub fn leases_fence_commits(store: &Store) {
    use std::time::Duration;
    let Some(leases) = store.leases() else {
        return;
    };
    let long = Duration::from_secs(30);
    let run = Uuid::now_v7();
    let name = format!("conformance-{run}/partition/0");
    let a = format!("a-{run}");
    let b = format!("b-{run}");
    let held = leases.acquire_lease(&name, &a, long).expect("acquire");
    let held = held.expect("a new lease is free");
    assert_eq!((held.epoch, held.owner.as_str()), (1, a.as_str()));
    assert_eq!(
        leases.acquire_lease(&name, &b, long).expect("acquire"),
        None
    );
    assert_eq!(
        leases
            .acquire_lease(&name, &a, long)
            .expect("acquire")
            .as_ref(),
        Some(&held),
        "the holder renews, at the same epoch"
    );
    assert!(leases.renew_lease(&held, long).expect("renew"));

    let upstream = format!("upstream-{run}");
    let stream = new_stream();
    let fenced_by = |lease: &eventsourcing::persistence::Lease, position| {
        Tracking::new(upstream.clone(), position).fenced(lease.clone())
    };
    store
        .append(&[append(&stream, 0, 1)], Some(&fenced_by(&held, 1)))
        .expect("a commit fenced by a lease held");
    let assert_fenced = |lease: &eventsourcing::persistence::Lease, position, what: &str| {
        match store.append(&[append(&stream, 1, 1)], Some(&fenced_by(lease, position))) {
            Err(PersistenceError::Fenced {
                lease: l,
                owner,
                epoch,
            }) => {
                assert_eq!(
                    (l, owner, epoch),
                    (lease.name.clone(), lease.owner.clone(), lease.epoch),
                    "{what}"
                );
            }
            other => panic!("{what}: expected PersistenceError::Fenced, got {other:?}"),
        }
        assert_eq!(
            store
                .select_events(&stream, &EventQuery::all())
                .expect("select")
                .len(),
            1,
            "{what}: a fenced commit writes nothing"
        );
        assert_eq!(
            store.max_tracking_position(&upstream).expect("tracking"),
            Some(2),
            "{what}: nor its tracking record"
        );
    };
    // Held: the other refusals still apply, and a commit without events tracks alone.
    match store.append(&[append(&stream, 1, 1)], Some(&fenced_by(&held, 1))) {
        Err(PersistenceError::AlreadyTracked { .. }) => {}
        other => {
            panic!("a fenced commit of a tracked position: expected AlreadyTracked, got {other:?}")
        }
    }
    match store.append(&[append(&stream, 0, 1)], Some(&fenced_by(&held, 2))) {
        Err(PersistenceError::Conflict(_)) => {}
        other => panic!("a fenced commit at a stale version: expected Conflict, got {other:?}"),
    }
    store
        .append(&[], Some(&fenced_by(&held, 2)))
        .expect("a fenced commit without events");
    assert_eq!(
        store.max_tracking_position(&upstream).expect("tracking"),
        Some(2)
    );
    assert_eq!(
        store
            .select_events(&stream, &EventQuery::all())
            .expect("select")
            .len(),
        1,
        "the refused commits wrote nothing"
    );
    let mut stale = held.clone();
    stale.epoch += 1;
    assert_fenced(&stale, 3, "another epoch");
    // Fenced comes first: before a conflict.
    match store.append(&[append(&stream, 0, 1)], Some(&fenced_by(&stale, 3))) {
        Err(PersistenceError::Fenced { .. }) => {}
        other => panic!("a fenced commit at a stale version: expected Fenced first, got {other:?}"),
    }
    let mut other = held.clone();
    other.owner.clone_from(&b);
    assert_fenced(&other, 3, "another owner");
    let mut missing = held.clone();
    missing.name = format!("{name}-never-taken");
    assert_fenced(&missing, 3, "a lease never taken");

    // Released: fenced at once, not renewable, and the next taker gets a new epoch.
    leases.release_lease(&held).expect("release");
    assert_fenced(&held, 3, "a released lease");
    assert!(!leases.renew_lease(&held, long).expect("renew"));
    let taken = leases.acquire_lease(&name, &b, long).expect("acquire");
    let taken = taken.expect("a released lease is free");
    assert_eq!(taken.epoch, 2);
    // A release of the old epoch does not end the new holder's lease.
    leases.release_lease(&held).expect("release");
    assert!(leases.renew_lease(&taken, long).expect("renew"));
    store
        .append(&[append(&stream, 1, 1)], Some(&fenced_by(&taken, 3)))
        .expect("the new holder commits");

    // Expired: fenced, not renewable, free for anyone, at a new epoch.
    let short_name = format!("conformance-{run}/partition/1");
    let short = leases
        .acquire_lease(&short_name, &a, Duration::from_millis(150))
        .expect("acquire")
        .expect("free");
    thread::sleep(Duration::from_millis(400));
    match store.append(&[append(&stream, 2, 1)], Some(&fenced_by(&short, 4))) {
        Err(PersistenceError::Fenced { .. }) => {}
        other => panic!("an expired lease: expected Fenced, got {other:?}"),
    }
    assert!(!leases.renew_lease(&short, long).expect("renew"));
    let again = leases
        .acquire_lease(&short_name, &a, long)
        .expect("acquire");
    assert_eq!(
        again.map(|l| l.epoch),
        Some(2),
        "expired, even to its owner, is a new epoch"
    );

    // Listing by prefix, by name; `%` and `_` are not wildcards.
    let odd = format!("conformance-{run}%_/partition/0");
    leases.acquire_lease(&odd, &a, long).expect("acquire");
    let listed = leases
        .list_leases(&format!("conformance-{run}/"))
        .expect("list");
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, [name.as_str(), short_name.as_str()]);
    assert!(listed.iter().all(|l| l.is_held()));
    assert_eq!((listed[0].owner.as_str(), listed[0].epoch), (b.as_str(), 2));
    assert!(listed[0].expires_in.is_some_and(|left| left <= long));
    leases.release_lease(&taken).expect("release");
    let listed = leases.list_leases(&name).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].is_held(), "released: listed, not held");

    // Removed only when no longer held, and only at its owner and epoch.
    let member = format!("conformance-{run}/member/a");
    let joined = leases
        .acquire_lease(&member, &a, long)
        .expect("acquire")
        .expect("free");
    leases.remove_lease(&joined).expect("remove");
    assert_eq!(
        leases.list_leases(&member).expect("list").len(),
        1,
        "held: kept"
    );
    leases.release_lease(&joined).expect("release");
    let mut other_epoch = joined.clone();
    other_epoch.epoch += 1;
    leases.remove_lease(&other_epoch).expect("remove");
    assert_eq!(
        leases.list_leases(&member).expect("list").len(),
        1,
        "another epoch: kept"
    );
    leases.remove_lease(&joined).expect("remove");
    assert!(
        leases.list_leases(&member).expect("list").is_empty(),
        "released: removed"
    );

    // Bad input is a typed error, before any I/O.
    for (name, owner) in [("", a.as_str()), ("x", ""), ("nul\0", a.as_str())] {
        assert!(
            matches!(
                leases.acquire_lease(name, owner, long),
                Err(PersistenceError::Config(_))
            ),
            "{name:?} {owner:?}"
        );
    }
}

/// Declares one `#[test]` per conformance check for a backend. `$fresh` is a function
/// returning `Option<Store>`: a fresh, empty store, or `None` to skip.
#[macro_export]
macro_rules! recorder_conformance {
    ($fresh:path) => {
        $crate::recorder_conformance!(@tests $fresh;
            append_and_select, select_ranges, conflict_writes_nothing,
            multi_stream_batch_is_atomic, invalid_batches_are_rejected, notifications,
            event_by_id, delete_stream, update_in_place, tracking, round_trips_exactly,
            hostile_identifiers, oversized_identifiers_are_rejected, snapshots,
            concurrent_writers_one_stream,
            concurrent_writers_gap_free, conflicts_are_exact_and_first_in_batch_order,
            large_appends_are_atomic_and_ordered, a_conflict_comes_before_already_tracked,
            visiting_stops_early_and_the_store_stays_usable,
            notifications_into_keep_what_the_vector_held, leases_fence_commits);
    };
    (@tests $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                if let Some(store) = $fresh() {
                    $crate::conformance::$check(&store);
                }
            }
        )*
    };
}
