//! The recorder contract checked against a model: random sequences of appends, deletes,
//! updates and reads run against a store and against a plain in-memory model of the contract,
//! and every answer must agree. Generic over the store, like the conformance suite.

use std::collections::BTreeMap;

use eventsourcing::persistence::{EventQuery, NotificationQuery, PersistenceError, StoredEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::conformance::{append, Store};

/// One operation against the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Append to some streams; each `(stream, expected_offset, count)` expects the stream's
    /// version plus `expected_offset` (so a non-zero offset must conflict).
    Append(Vec<(usize, i8, u8)>),
    /// Delete a stream.
    Delete(usize),
    /// Rewrite one event's payload in place.
    Update(usize, u8),
    /// Read a stream's events in a range.
    Select {
        /// The stream.
        stream: usize,
        /// Lowest version.
        from: Option<u8>,
        /// Highest version.
        to: Option<u8>,
        /// Newest first.
        descending: bool,
        /// At most.
        limit: Option<u8>,
    },
    /// Read the log from the n-th recorded event, at most `limit`.
    Notifications(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0..4usize, prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)], 0..4u8), 1..3)
            .prop_map(Op::Append),
        1 => (0..4usize).prop_map(Op::Delete),
        1 => (0..4usize, 1..6u8).prop_map(|(s, v)| Op::Update(s, v)),
        2 => (0..4usize, prop::option::of(0..6u8), prop::option::of(0..6u8), any::<bool>(), prop::option::of(0..4u8))
            .prop_map(|(stream, from, to, descending, limit)| Op::Select { stream, from, to, descending, limit }),
        1 => (0..20u8, 1..8u8).prop_map(|(from, limit)| Op::Notifications(from, limit)),
    ]
}

/// What the model keeps: each stream's payloads and the log of (stream, version, position).
#[derive(Default)]
struct Model {
    streams: BTreeMap<usize, Vec<Vec<u8>>>,
    log: Vec<(usize, u64, u64)>,
}

fn fingerprint(events: &[StoredEvent]) -> Vec<(String, u64, Vec<u8>)> {
    events
        .iter()
        .map(|e| (e.stream_id.clone(), e.version, e.payload.clone()))
        .collect()
}

fn check(store: &Store, names: &[String], ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    // A store without a global log (Cassandra) assigns no positions, refuses appends to
    // several streams, and has no notifications to compare.
    let log = crate::conformance::has_global_log(store);
    for op in ops {
        match op {
            Op::Append(parts) => {
                let mut seen = Vec::new();
                let mut batch = Vec::new();
                let mut conflict = false;
                for &(stream, offset, count) in parts {
                    if seen.contains(&stream) {
                        continue;
                    }
                    seen.push(stream);
                    let current = model.streams.get(&stream).map_or(0, Vec::len) as u64;
                    let expected = current
                        .checked_add_signed(i64::from(offset))
                        .unwrap_or(current + 1);
                    conflict |= expected != current;
                    batch.push(append(&names[stream], expected, u64::from(count)));
                }
                if !log && batch.len() > 1 {
                    prop_assert!(
                        matches!(
                            store.append(&batch, None),
                            Err(PersistenceError::Unsupported { .. })
                        ),
                        "a multi-stream append without a log is refused"
                    );
                    continue;
                }
                match store.append(&batch, None) {
                    Ok(positions) if !log => {
                        prop_assert!(!conflict, "a stale append succeeded: {batch:?}");
                        prop_assert!(positions.is_empty(), "positions without a log");
                        for (part, &stream) in batch.iter().zip(&seen) {
                            let events = model.streams.entry(stream).or_default();
                            events.extend(part.events.iter().map(|e| e.payload.clone()));
                        }
                    }
                    Ok(positions) => {
                        prop_assert!(!conflict, "a stale append succeeded: {batch:?}");
                        let mut positions = positions.into_iter();
                        for (part, &stream) in batch.iter().zip(&seen) {
                            for event in &part.events {
                                let position = positions
                                    .next()
                                    .ok_or_else(|| TestCaseError::fail("missing position"))?;
                                if let Some(&(_, _, last)) = model.log.last() {
                                    prop_assert!(
                                        position > last,
                                        "position {position} after {last}"
                                    );
                                }
                                model
                                    .streams
                                    .entry(stream)
                                    .or_default()
                                    .push(event.payload.clone());
                                model.log.push((stream, event.version, position));
                            }
                        }
                        prop_assert!(positions.next().is_none(), "extra positions");
                    }
                    Err(PersistenceError::Conflict(_)) => {
                        prop_assert!(conflict, "unexpected conflict")
                    }
                    Err(other) => {
                        return Err(TestCaseError::fail(format!("append failed: {other}")))
                    }
                }
            }
            Op::Delete(stream) => {
                let deleted = store
                    .delete_stream(&names[*stream])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expected = model.streams.remove(stream).map_or(0, |v| v.len() as u64);
                prop_assert_eq!(deleted, expected);
                model.log.retain(|(s, _, _)| s != stream);
            }
            Op::Update(stream, version) => {
                let version = u64::from(*version);
                let query = EventQuery::all().from_version(version).to_version(version);
                let found = store
                    .select_events(&names[*stream], &query)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let exists = model
                    .streams
                    .get(stream)
                    .is_some_and(|v| v.len() as u64 >= version);
                prop_assert_eq!(found.len(), usize::from(exists));
                let mut event = found.into_iter().next().unwrap_or_else(|| {
                    crate::conformance::event(&names[*stream], version, "Test.Happened")
                });
                event.payload = format!(r#"{{"updated":{version}}}"#).into_bytes();
                match store.update_events(std::slice::from_ref(&event)) {
                    Ok(()) => {
                        prop_assert!(exists, "updated a missing event");
                        if let Some(slot) = model.streams.get_mut(stream).and_then(|v| {
                            v.get_mut(usize::try_from(version - 1).unwrap_or(usize::MAX))
                        }) {
                            slot.clone_from(&event.payload);
                        }
                    }
                    Err(PersistenceError::EventNotFound { .. }) => prop_assert!(!exists),
                    Err(other) => {
                        return Err(TestCaseError::fail(format!("update failed: {other}")))
                    }
                }
            }
            Op::Select {
                stream,
                from,
                to,
                descending,
                limit,
            } => {
                let mut query = EventQuery::all();
                query.from_version = from.map(u64::from);
                query.to_version = to.map(u64::from);
                query.descending = *descending;
                query.limit = limit.map(usize::from);
                let read = store
                    .select_events(&names[*stream], &query)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut expected: Vec<(String, u64, Vec<u8>)> = model
                    .streams
                    .get(stream)
                    .map(|payloads| {
                        (1u64..)
                            .zip(payloads)
                            .filter(|(v, _)| query.contains(*v))
                            .map(|(v, p)| (names[*stream].clone(), v, p.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                if *descending {
                    expected.reverse();
                }
                expected.truncate(query.limit.unwrap_or(usize::MAX));
                prop_assert_eq!(fingerprint(&read), expected);
            }
            Op::Notifications(_, _) if !log => {}
            Op::Notifications(from, limit) => {
                let Some(&(_, _, start)) = model.log.get(usize::from(*from)) else {
                    continue;
                };
                let read = store
                    .select_notifications(&NotificationQuery::new(start, usize::from(*limit)))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let got: Vec<(String, u64, u64)> = read
                    .iter()
                    .map(|e| (e.stream_id.clone(), e.version, e.position.unwrap_or(0)))
                    .collect();
                let expected: Vec<(String, u64, u64)> = model.log[usize::from(*from)..]
                    .iter()
                    .take(usize::from(*limit))
                    .map(|&(s, v, p)| (names[s].clone(), v, p))
                    .collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
    Ok(())
}

/// Runs `cases` random operation sequences, each on a fresh store from `fresh`.
///
/// # Errors
/// The minimal failing sequence, when the store disagrees with the model.
pub fn run(fresh: &dyn Fn() -> Store, cases: u32) -> Result<(), TestError<Vec<Op>>> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        let store = fresh();
        let names: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        check(&store, &names, &ops)
    })
}
