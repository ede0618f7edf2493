//! PostgreSQL under concurrent writers: the gap test with 8 writers and the deterministic
//! slow-writer test in both ordering modes (transaction ids and table lock), the same-stream
//! race, each also run against deliberately broken variants (a plain sequence; transaction-id
//! positions read without the horizon) to prove the checks catch the breakage; follower lag
//! and its blocker; typed errors on a killed connection and on timeouts, with recovery; a
//! 10,000-event batch; schema versioning and ordering-mode pinning; and ignored benchmarks
//! (throughput of 8 writers with a follower, payload column types). Every test uses its own
//! schema.

use eventsourcing::Conflict;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use eventsourcing::persistence::postgres::{self as postgres_mod, OrderingMode};
use eventsourcing::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, NotificationQuery, PersistenceError,
    PostgresConfig, PostgresRecorder, Storage,
};
use eventsourcing_tests::conformance::append;
use eventsourcing_tests::{postgres_url, unique_schema};

type Store = Arc<dyn Storage>;

/// A fresh schema's configuration, or `None` (after a loud skip notice).
fn config(test: &str) -> Option<PostgresConfig> {
    Some(PostgresConfig::new(postgres_url(test)?).schema(unique_schema()))
}

fn open(config: PostgresConfig) -> Store {
    Arc::new(PostgresRecorder::open(config).expect("open"))
}

/// A plain connection beside the recorder's pool, for setup and sabotage.
fn client() -> postgres::Client {
    let url = postgres_url("client").expect("url");
    postgres::Client::connect(&url, postgres::NoTls).expect("connect")
}

fn drop_schema(config: &PostgresConfig) {
    client()
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            config.schema_name()
        ))
        .expect("drop schema");
}

/// One writer thread per store, each appending `batches` batches of two events to its own
/// stream, while a follower reads the log by position through `reader`. Panics if the
/// follower skips or repeats an event, or sees positions out of order.
fn gap_check(writers: Vec<Store>, reader: &Store, batches: u64) {
    let start = reader.max_position().expect("max") + 1;
    let expected = writers.len() * usize::try_from(batches * 2).expect("small");
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, done) = (Arc::clone(reader), Arc::clone(&done));
        thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next = start;
            let mut finished_at: Option<std::time::Instant> = None;
            loop {
                // Once the writers are done, keep reading until every event has been seen or
                // a grace period has passed: in the transaction-id mode, a transaction held
                // open elsewhere on the server (another test) delays events without hiding
                // them for good. A follower that skipped an event never catches up.
                let finished = done.load(Ordering::SeqCst)
                    && (seen.len() >= expected
                        || finished_at
                            .get_or_insert_with(std::time::Instant::now)
                            .elapsed()
                            > Duration::from_secs(3));
                let page = store
                    .select_notifications(&NotificationQuery::new(next, 50))
                    .expect("follow");
                for e in &page {
                    let position = e.position.expect("position");
                    assert!(position >= next, "out of order: {position} after {next}");
                    next = position + 1;
                    seen.push(position);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let handles: Vec<_> = writers
        .into_iter()
        .map(|store| {
            thread::spawn(move || {
                let stream = uuid::Uuid::now_v7().to_string();
                for batch in 0..batches {
                    store
                        .append(&[append(&stream, batch * 2, 2)], None)
                        .expect("append");
                }
            })
        })
        .collect();
    let count = handles.len();
    for handle in handles {
        handle.join().expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("follower");
    // The final log, read once every event is visible (bounded, as above).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let logged: Vec<u64> = loop {
        let logged: Vec<u64> = reader
            .select_notifications(&NotificationQuery::new(start, usize::MAX >> 1))
            .expect("log")
            .iter()
            .filter_map(|e| e.position)
            .collect();
        if logged.len() >= expected || std::time::Instant::now() > deadline {
            break logged;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        count * usize::try_from(batches * 2).expect("small"),
        expected
    );
    assert_eq!(logged.len(), expected, "every event was logged");
    assert_eq!(
        seen, logged,
        "the follower's view equals the final log: nothing skipped"
    );
}

/// Eight writers, one of which lingers 30 ms inside each append transaction (so that the
/// others commit higher positions meanwhile if they can), and a follower.
fn eight_writers(config: &PostgresConfig) {
    let reader = open(config.clone());
    let mut writers = vec![open(
        config
            .clone()
            .hold_in_transaction_for_testing(Duration::from_millis(30)),
    )];
    writers.extend((1..8).map(|_| Arc::clone(&reader)));
    gap_check(writers, &reader, 15);
}

#[test]
fn gap_free_with_eight_writers_xid() {
    let Some(config) = config("gap_free_with_eight_writers_xid") else {
        return;
    };
    let config = config.ordering(OrderingMode::TransactionId);
    eight_writers(&config);
    drop_schema(&config);
}

#[test]
fn gap_free_with_eight_writers_table_lock() {
    let Some(config) = config("gap_free_with_eight_writers_table_lock") else {
        return;
    };
    let config = config.ordering(OrderingMode::TableLock);
    eight_writers(&config);
    drop_schema(&config);
}

#[test]
fn gap_check_fails_on_a_plain_sequence() {
    let Some(config) = config("gap_check_fails_on_a_plain_sequence") else {
        return;
    };
    let broken = config.ordering(OrderingMode::UnorderedForTesting);
    let result = catch_unwind(AssertUnwindSafe(|| eight_writers(&broken)));
    drop_schema(&broken);
    assert!(
        result.is_err(),
        "without the table lock the follower must skip an event"
    );
}

#[test]
fn gap_check_fails_on_xid_positions_without_the_horizon() {
    let Some(config) = config("gap_check_fails_on_xid_positions_without_the_horizon") else {
        return;
    };
    let broken = config.ordering(OrderingMode::TransactionIdWithoutHorizonForTesting);
    let result = catch_unwind(AssertUnwindSafe(|| eight_writers(&broken)));
    drop_schema(&broken);
    assert!(
        result.is_err(),
        "transaction-id positions read without the horizon must let the follower skip"
    );
}

/// Deterministic: writer A takes a position and lingers 400 ms before commit; writer B appends
/// 100 ms later; a follower reads in between and after. Returns the positions the follower saw
/// and the positions in the log.
fn slow_writer_then_fast_writer(config: &PostgresConfig) -> (Vec<u64>, Vec<u64>) {
    let fast = open(config.clone());
    let slow = open(
        config
            .clone()
            .hold_in_transaction_for_testing(Duration::from_millis(400)),
    );
    let start = fast.max_position().expect("max") + 1;
    let a = thread::spawn(move || slow.append(&[append("slow", 0, 1)], None).expect("slow"));
    thread::sleep(Duration::from_millis(100));
    let b = {
        let fast = Arc::clone(&fast);
        thread::spawn(move || fast.append(&[append("fast", 0, 1)], None).expect("fast"))
    };
    thread::sleep(Duration::from_millis(100));
    let mut seen = Vec::new();
    let mut next = start;
    let mut follow = |seen: &mut Vec<u64>| {
        for e in fast
            .select_notifications(&NotificationQuery::new(next, 10))
            .expect("follow")
        {
            let position = e.position.expect("position");
            next = position + 1;
            seen.push(position);
        }
    };
    follow(&mut seen);
    a.join().expect("a");
    b.join().expect("b");
    follow(&mut seen);
    let logged = fast
        .select_notifications(&NotificationQuery::new(start, 10))
        .expect("log")
        .iter()
        .filter_map(|e| e.position)
        .collect();
    (seen, logged)
}

#[test]
fn slow_writer_is_not_skipped_xid() {
    let Some(config) = config("slow_writer_is_not_skipped_xid") else {
        return;
    };
    let config = config.ordering(OrderingMode::TransactionId);
    let (seen, logged) = slow_writer_then_fast_writer(&config);
    drop_schema(&config);
    assert_eq!(logged.len(), 2);
    assert_eq!(seen, logged);
}

#[test]
fn slow_writer_is_not_skipped_table_lock() {
    let Some(config) = config("slow_writer_is_not_skipped_table_lock") else {
        return;
    };
    let config = config.ordering(OrderingMode::TableLock);
    let (seen, logged) = slow_writer_then_fast_writer(&config);
    drop_schema(&config);
    assert_eq!(logged.len(), 2);
    assert_eq!(seen, logged);
}

#[test]
fn slow_writer_is_skipped_without_the_horizon() {
    let Some(config) = config("slow_writer_is_skipped_without_the_horizon") else {
        return;
    };
    let broken = config
        .ordering(OrderingMode::TransactionIdWithoutHorizonForTesting)
        .read_own_writes_timeout(Duration::ZERO);
    let (seen, logged) = slow_writer_then_fast_writer(&broken);
    drop_schema(&broken);
    assert_eq!(logged.len(), 2);
    assert_eq!(
        seen,
        logged[1..],
        "without the horizon the follower sees the later transaction first and skips the slow one"
    );
}

/// Transaction-id mode, step by step with a follower that wrote nothing (so it never waits):
/// while the slow writer A is open, the fast writer B (later transaction id) commits; the
/// follower reads nothing, `follower_lag` shows B committed but not readable and names A's
/// session as the blocker; once A commits the follower reads A then B.
#[test]
fn follower_waits_for_the_slow_writer_and_lag_names_it() {
    let Some(config) = config("follower_waits_for_the_slow_writer_and_lag_names_it") else {
        return;
    };
    let name = format!("es_slow_{}", std::process::id());
    let config = config.ordering(OrderingMode::TransactionId);
    let follower = PostgresRecorder::open(config.clone()).expect("open");
    let slow = open(
        config
            .clone()
            .application_name(name.clone())
            .hold_in_transaction_for_testing(Duration::from_millis(600)),
    );
    let fast = open(config.clone());
    let a = thread::spawn(move || slow.append(&[append("slow", 0, 1)], None).expect("slow")[0]);
    thread::sleep(Duration::from_millis(150));
    let b = fast.append(&[append("fast", 0, 1)], None).expect("fast")[0];
    let early = follower
        .select_notifications(&NotificationQuery::new(1, 10))
        .expect("follow");
    let lag = follower.follower_lag().expect("lag");
    let a = a.join().expect("a");
    assert!(a < b, "A's transaction id is older: {a} < {b}");
    assert!(
        early.is_empty(),
        "nothing is readable while A is open: {early:?}"
    );
    assert_eq!(lag.readable, 0);
    assert_eq!(lag.committed, b, "B is committed but not readable");
    assert!(lag.is_behind());
    // Another transaction anywhere in the cluster may be older still: only check the name
    // when the blocker is ours.
    let blocker = lag.blocker.expect("a blocker is reported");
    if blocker.application_name.as_deref() == Some(name.as_str()) {
        assert!(blocker.transaction_age.is_some());
    }
    let late: Vec<u64> = follower
        .select_notifications(&NotificationQuery::new(1, 10))
        .expect("follow")
        .iter()
        .filter_map(|e| e.position)
        .collect();
    assert_eq!(late, vec![a, b], "A then B, nothing skipped");
    let lag = follower.follower_lag().expect("lag");
    assert!(lag.committed >= b && !lag.is_behind() || lag.blocker.is_some());
    drop(follower);
    drop_schema(&config);
}

#[test]
fn ordering_mode_is_pinned_by_the_schema() {
    let Some(config) = config("ordering_mode_is_pinned_by_the_schema") else {
        return;
    };
    let xid = config.clone().ordering(OrderingMode::TransactionId);
    let store = open(xid.clone());
    store.append(&[append("s", 0, 1)], None).expect("append");
    drop(store);
    let error = PostgresRecorder::open(config.clone().ordering(OrderingMode::TableLock))
        .expect_err("mixing modes would break the order");
    assert!(
        matches!(&error, PersistenceError::Config(m) if m.contains("xid")),
        "{error:?}"
    );
    drop(PostgresRecorder::open(xid).expect("the same mode opens"));
    drop_schema(&config);
}

#[test]
fn oversized_xid_append_is_a_typed_error() {
    let Some(config) = config("oversized_xid_append_is_a_typed_error") else {
        return;
    };
    let config = config.ordering(OrderingMode::TransactionId);
    let store = open(config.clone());
    let batch = append("big", 0, postgres_mod::MAX_EVENTS_PER_XID_APPEND + 1);
    let error = store.append(&[batch], None).expect_err("too many");
    assert!(
        matches!(error, PersistenceError::LimitExceeded { .. }),
        "{error:?}"
    );
    drop(store);
    drop_schema(&config);
}

#[test]
fn slow_writer_is_skipped_on_a_plain_sequence() {
    let Some(config) = config("slow_writer_is_skipped_on_a_plain_sequence") else {
        return;
    };
    let broken = config.ordering(OrderingMode::UnorderedForTesting);
    let (seen, logged) = slow_writer_then_fast_writer(&broken);
    drop_schema(&broken);
    assert_eq!(logged.len(), 2);
    assert_eq!(
        seen,
        logged[1..],
        "the plain sequence lets the follower skip the slow writer's lower position"
    );
}

/// Eight threads append at the same version of one stream, round after round: exactly one
/// wins each round, the others get a conflict naming the stream.
fn same_stream_race(store: &Store) {
    const THREADS: usize = 8;
    const ROUNDS: u64 = 10;
    let stream = uuid::Uuid::now_v7().to_string();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(THREADS));
        let results: Vec<_> = (0..THREADS)
            .map(|_| {
                let (store, stream, barrier) =
                    (Arc::clone(store), stream.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    store.append(&[append(&stream, round, 1)], None)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: exactly one writer wins: {results:?}"
        );
        for result in &results {
            match result {
                Ok(_) => {}
                Err(PersistenceError::Conflict(Conflict {
                    stream_id,
                    expected,
                    actual,
                })) => {
                    assert_eq!((stream_id, *expected, *actual), (&stream, round, round + 1));
                }
                Err(other) => panic!("expected a conflict, got {other:?}"),
            }
        }
    }
    let read = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(read.len(), usize::try_from(ROUNDS).expect("small"));
}

#[test]
fn same_stream_race_has_one_winner() {
    let Some(config) = config("same_stream_race_has_one_winner") else {
        return;
    };
    same_stream_race(&open(config.clone()));
    drop_schema(&config);
}

#[test]
fn unique_index_alone_turns_a_race_into_a_conflict() {
    // Without the in-transaction version check, the unique index on (stream_id, version)
    // catches the racers (SQLSTATE 23505) and they still get typed conflicts. Without the
    // lock either, the writers really race into the index.
    let Some(config) = config("unique_index_alone_turns_a_race_into_a_conflict") else {
        return;
    };
    let config = config
        .skip_version_check_for_testing()
        .ordering(OrderingMode::UnorderedForTesting);
    same_stream_race(&open(config.clone()));
    drop_schema(&config);
}

/// The one-stream append checks the stream's highest version, not only that the row at the
/// expected version exists: on a stream with a gap (1, 2, 5: written by a writer that skipped
/// the check, or imported), an append expecting 2 is a conflict naming 5, not version 3.
#[test]
fn a_stream_with_a_gap_is_a_conflict_at_its_highest_version() {
    let Some(config) = config("a_stream_with_a_gap_is_a_conflict_at_its_highest_version") else {
        return;
    };
    let unchecked = open(config.clone().skip_version_check_for_testing());
    let stream = uuid::Uuid::now_v7().to_string();
    unchecked
        .append(&[append(&stream, 0, 2)], None)
        .expect("versions 1 and 2");
    unchecked
        .append(&[append(&stream, 4, 1)], None)
        .expect("version 5, leaving a gap");
    drop(unchecked);
    let store = open(config.clone());
    for events in [1, 3] {
        match store.append(&[append(&stream, 2, events)], None) {
            Err(PersistenceError::Conflict(Conflict {
                expected, actual, ..
            })) => assert_eq!((expected, actual), (2, 5), "{events} events"),
            other => panic!("{events} events: expected a conflict at version 5, got {other:?}"),
        }
    }
    let versions: Vec<u64> = store
        .select_events(&stream, &EventQuery::all())
        .expect("read")
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2, 5], "nothing written");
    drop(store);
    drop_schema(&config);
}

#[test]
fn race_check_fails_without_concurrency_control() {
    let Some(config) = config("race_check_fails_without_concurrency_control") else {
        return;
    };
    let broken = config.skip_version_check_for_testing();
    let store = open(broken.clone());
    client()
        .batch_execute(&format!(
            "DROP INDEX \"{}\".events_stream_version_key",
            broken.schema_name()
        ))
        .expect("drop the unique index");
    let result = catch_unwind(AssertUnwindSafe(|| same_stream_race(&store)));
    drop(store);
    drop_schema(&broken);
    assert!(
        result.is_err(),
        "with neither the version check nor the unique index, several writers must win"
    );
}

#[test]
fn killed_connection_is_a_typed_error_then_recovers() {
    let Some(config) = config("killed_connection_is_a_typed_error_then_recovers") else {
        return;
    };
    let name = format!("es_kill_{}", std::process::id());
    let config = config.pool_size(1).application_name(name.clone());
    let store = open(config.clone());
    let first = store.append(&[append("s", 0, 1)], None).expect("append")[0];
    let killed: i64 = client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&name],
        )
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 1, "the pool's one connection was terminated");
    thread::sleep(Duration::from_millis(200));
    let error = store
        .append(&[append("s", 1, 1)], None)
        .expect_err("the connection is gone");
    assert!(
        matches!(error, PersistenceError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    let second = store
        .append(&[append("s", 1, 1)], None)
        .expect("the pool reconnects")[0];
    assert!(second > first);
    assert_eq!(store.max_position().expect("max"), second);
    drop(store);
    drop_schema(&config);
}

#[test]
fn lock_timeout_is_busy_then_recovers() {
    let Some(config) = config("lock_timeout_is_busy_then_recovers") else {
        return;
    };
    let config = config.statement_timeout(Duration::from_millis(300));
    let store = open(config.clone());
    let mut blocker = client();
    let mut tx = blocker.transaction().expect("begin");
    tx.batch_execute(&format!(
        "LOCK TABLE \"{}\".events IN ACCESS EXCLUSIVE MODE",
        config.schema_name()
    ))
    .expect("lock");
    let started = Instant::now();
    let error = store
        .append(&[append("s", 0, 1)], None)
        .expect_err("the table is locked");
    assert!(matches!(error, PersistenceError::Busy { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let error = store.max_position().expect_err("reads wait too");
    assert!(matches!(error, PersistenceError::Busy { .. }), "{error:?}");
    tx.rollback().expect("release");
    store
        .append(&[append("s", 0, 1)], None)
        .expect("append after");
    drop(store);
    drop_schema(&config);
}

#[test]
fn ten_thousand_events_in_one_append() {
    let Some(config) = config("ten_thousand_events_in_one_append") else {
        return;
    };
    let store = open(config.clone());
    let positions = store
        .append(&[append("big", 0, 10_000)], None)
        .expect("append");
    assert_eq!(positions.len(), 10_000);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let read = store
        .select_events("big", &EventQuery::all())
        .expect("select");
    assert_eq!(read.len(), 10_000);
    assert_eq!(read[9_999].version, 10_000);
    assert_eq!(read[9_999].position, positions.last().copied());
    drop(store);
    drop_schema(&config);
}

#[test]
fn newer_schema_version_is_refused() {
    let Some(config) = config("newer_schema_version_is_refused") else {
        return;
    };
    drop(open(config.clone()));
    client()
        .batch_execute(&format!(
            "UPDATE \"{}\".eventsourcing_schema SET schema_version = 99",
            config.schema_name()
        ))
        .expect("bump");
    let error = PostgresRecorder::open(config.clone()).expect_err("newer schema");
    assert!(
        matches!(
            &error,
            PersistenceError::SchemaVersion {
                found: 99,
                supported,
                ..
            } if *supported == i64::from(eventsourcing::persistence::postgres::SCHEMA_VERSION)
        ),
        "the same typed error as SQLite: {error:?}"
    );
    drop_schema(&config);
}

/// Opening a store whose schema is current runs no DDL and takes no lock: it does not queue
/// behind a writer that holds its transaction open, and later appends do not queue behind it.
/// (It used to re-run `CREATE INDEX IF NOT EXISTS`, which waits for every open insert.)
#[test]
fn opening_a_current_store_does_not_wait_for_writers() {
    let Some(config) = config("opening_a_current_store_does_not_wait_for_writers") else {
        return;
    };
    drop(open(config.clone()));
    let slow = open(
        config
            .clone()
            .hold_in_transaction_for_testing(Duration::from_secs(3)),
    );
    let writer = {
        let slow = Arc::clone(&slow);
        std::thread::spawn(move || {
            slow.append(
                &[eventsourcing_tests::conformance::append("slow", 0, 1)],
                None,
            )
            .expect("slow append")
        })
    };
    // Let the slow writer insert and start holding its transaction.
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let other = open(config.clone());
    let opened = started.elapsed();
    other
        .append(
            &[eventsourcing_tests::conformance::append("fast", 0, 1)],
            None,
        )
        .expect("append beside the slow writer");
    let appended = started.elapsed();
    writer.join().expect("writer");
    assert!(
        opened < Duration::from_millis(1500),
        "the open waited {opened:?} behind a writer"
    );
    assert!(
        appended < Duration::from_millis(2000),
        "open and append waited {appended:?}"
    );
    drop((slow, other));
    drop_schema(&config);
}

#[test]
fn application_opens_a_postgres_url() {
    let Some(url) = postgres_url("application_opens_a_postgres_url") else {
        return;
    };
    let schema = unique_schema();
    let separator = if url.contains('?') { '&' } else { '?' };
    let app = eventsourcing::Application::open(&format!(
        "{url}{separator}schema={schema}&table_prefix=app_"
    ));
    assert!(app.is_ok(), "{:?}", app.err());
    drop(app);
    let config = PostgresConfig::new(url).schema(schema);
    let tables: i64 = client()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 \
             AND table_name = 'app_events'",
            &[&config.schema_name()],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 1);
    drop_schema(&config);
}

/// Events per second with 8 writer threads on distinct streams, one event per append, for
/// `seconds`, in the given ordering mode, while a follower reads the log in position order.
/// Returns (written events/s, events the follower read in order / s).
fn throughput(config: &PostgresConfig, seconds: u64) -> (f64, f64) {
    let store = open(config.clone().pool_size(9));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let payload = vec![b'x'; 200];
    let follower = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        thread::spawn(move || {
            let mut next = 1;
            let mut read = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let page = store
                    .select_notifications(&NotificationQuery::new(next, 500))
                    .expect("follow");
                if let Some(last) = page.last() {
                    next = last.position.expect("position") + 1;
                    read += page.len() as u64;
                } else {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            read
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (store, stop, count, payload) = (
                Arc::clone(&store),
                Arc::clone(&stop),
                Arc::clone(&count),
                payload.clone(),
            );
            thread::spawn(move || {
                let stream = uuid::Uuid::now_v7().to_string();
                let mut version = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = append(&stream, version, 1);
                    batch.events[0].payload.clone_from(&payload);
                    store.append(&[batch], None).expect("append");
                    version += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let read = follower.join().expect("follower");
    let elapsed = started.elapsed().as_secs_f64();
    let events = count.load(Ordering::Relaxed);
    drop(store);
    drop_schema(config);
    #[allow(clippy::cast_precision_loss)]
    let rates = (events as f64 / elapsed, read as f64 / elapsed);
    rates
}

/// `BENCH_SECONDS` (default 5) per mode, two interleaved rounds.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn throughput_eight_writers() {
    let Some(config) = config("throughput_eight_writers") else {
        return;
    };
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for round in 1..=2 {
        let mut baseline = 0.0;
        for (name, mode) in [
            (
                "plain sequence (NOT gap-free)",
                OrderingMode::UnorderedForTesting,
            ),
            ("table lock (gap-free)", OrderingMode::TableLock),
            ("transaction id (gap-free)", OrderingMode::TransactionId),
        ] {
            let config = config.clone().schema(unique_schema()).ordering(mode);
            let (rate, read) = throughput(&config, seconds);
            if mode == OrderingMode::UnorderedForTesting {
                baseline = rate;
            }
            println!(
                "round {round}: {name}: {rate:.0} events/s written ({:.2} of plain), \
                 follower read {read:.0} events/s (8 writers, 1 event/append, {seconds} s)",
                rate / baseline
            );
        }
    }
}

/// Writes 10,000 events (100 appends of 100, 200-byte JSON payloads) into a table whose
/// payload column is `bytea`, `json` or `jsonb`, then reads them back by stream and by
/// position, with raw SQL; prints the times. Two rounds.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn payload_column_types() {
    let Some(config) = config("payload_column_types") else {
        return;
    };
    let schema = config.schema_name().to_owned();
    let mut db = client();
    db.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .expect("schema");
    let payload = format!(
        "{{\"name\":\"Fido\",\"trick\":\"roll over\",\"padding\":\"{}\"}}",
        "x".repeat(150)
    );
    for round in 1..=2 {
        for ty in ["bytea", "json", "jsonb"] {
            let table = format!("\"{schema}\".p_{ty}_{round}");
            db.batch_execute(&format!(
                "CREATE TABLE {table} (position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 stream_id TEXT NOT NULL, version BIGINT NOT NULL, payload {ty} NOT NULL, \
                 UNIQUE (stream_id, version))"
            ))
            .expect("table");
            // The client sends bytes for bytea and text for json/jsonb; the server parses
            // (json: validates; jsonb: converts) the text.
            let cast = if ty == "bytea" { "bytea" } else { "text" };
            let insert = db
                .prepare(&format!(
                    "INSERT INTO {table} (stream_id, version, payload) \
                     SELECT 's', v, p::{ty} FROM UNNEST($1::int8[], $2::{cast}[]) AS r(v, p)"
                ))
                .expect("prepare");
            let started = Instant::now();
            for chunk in 0..100i64 {
                let versions: Vec<i64> = (chunk * 100 + 1..=chunk * 100 + 100).collect();
                if ty == "bytea" {
                    let p: Vec<&[u8]> = versions.iter().map(|_| payload.as_bytes()).collect();
                    db.execute(&insert, &[&versions, &p]).expect("insert");
                } else {
                    let p: Vec<&str> = versions.iter().map(|_| payload.as_str()).collect();
                    db.execute(&insert, &[&versions, &p]).expect("insert");
                }
            }
            let write = started.elapsed();
            let select = |sql: &str, db: &mut postgres::Client| {
                let started = Instant::now();
                let rows = db.query(sql, &[]).expect("select");
                let bytes: usize = rows
                    .iter()
                    .map(|r| {
                        if ty == "bytea" {
                            r.get::<_, &[u8]>(0).len()
                        } else {
                            r.get::<_, &str>(0).len()
                        }
                    })
                    .sum();
                assert_eq!(rows.len(), 10_000);
                assert!(bytes >= 10_000 * payload.len());
                started.elapsed()
            };
            let text = if ty == "bytea" { "" } else { "::text" };
            let stream = select(
                &format!(
                    "SELECT payload{text} FROM {table} WHERE stream_id = 's' ORDER BY version"
                ),
                &mut db,
            );
            let scan = select(
                &format!("SELECT payload{text} FROM {table} WHERE position >= 1 ORDER BY position"),
                &mut db,
            );
            println!(
                "round {round}: {ty:>5}: write 10k {:>6.1} ms, stream load {:>6.1} ms, \
                 notification scan {:>6.1} ms",
                write.as_secs_f64() * 1e3,
                stream.as_secs_f64() * 1e3,
                scan.as_secs_f64() * 1e3
            );
        }
    }
    drop_schema(&config);
}

/// A role that may only read opens a current store (no DDL to run), reads it, and gets the
/// typed `ReadOnly` error for a write, with nothing written.
#[test]
fn a_read_only_role_reads_and_gets_a_typed_error_on_write() {
    let Some(config) = config("a_read_only_role_reads_and_gets_a_typed_error_on_write") else {
        return;
    };
    let store = open(config.clone());
    store
        .append(&[eventsourcing_tests::conformance::append("s", 0, 2)], None)
        .expect("append");
    let schema = config.schema_name().to_owned();
    let role = format!(
        "es_reader_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    client()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA \"{schema}\" TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {role};"
        ))
        .expect("create the role");
    let url = postgres_url("read-only role").expect("url");
    let reader_url = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let result = PostgresRecorder::open(PostgresConfig::new(reader_url).schema(&schema));
    let outcome = result.map(|reader| {
        let read = reader
            .select_events("s", &EventQuery::all())
            .map(|events| events.len());
        let write = reader.append(&[eventsourcing_tests::conformance::append("s", 2, 1)], None);
        (read, write.map(|_| ()))
    });
    client()
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .expect("drop the role");
    let (read, write) = outcome.expect("a read-only role opens a current store");
    assert_eq!(read.expect("reads work"), 2);
    let error = write.expect_err("writes are refused");
    assert!(
        matches!(error, PersistenceError::ReadOnly { .. }),
        "{error:?}"
    );
    assert_eq!(
        store
            .select_events("s", &EventQuery::all())
            .expect("select")
            .len(),
        2,
        "nothing written"
    );
    drop(store);
    drop_schema(&config);
}
