//! Cross-process wake-ups on PostgreSQL: a writer in another OS process commits, and a
//! follower here wakes within milliseconds through `listen_for_commits`, with a poll interval
//! far longer than that; a lost listener connection or a writer that sends no notifications
//! delays the follower by at most the poll interval, and never stalls it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use eventsourcing::persistence::{
    AggregateRecorder, ApplicationRecorder, PostgresConfig, PostgresRecorder,
};
use eventsourcing_tests::conformance::append;
use eventsourcing_tests::wakeups::{
    latencies, micros_now, percentile, report_commit, run_child_writer, wait_until_listening,
};
use eventsourcing_tests::{postgres_url, unique_schema};

const WRITER_ENV: &str = "ES_WAKEUP_WRITER";

/// The child's entry point: does nothing unless the parent set `ES_WAKEUP_WRITER` (to
/// `URL SCHEMA EVENTS NOTIFY`). Appends `EVENTS` events 150 ms apart, printing `COMMITTED
/// <micros since the epoch>` after each append returns.
#[test]
fn wakeup_writer_entry() {
    let Ok(spec) = std::env::var(WRITER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [url, schema, events, notify] = parts[..] else {
        panic!("bad {WRITER_ENV}: {spec}");
    };
    let events: u64 = events.parse().expect("count");
    let recorder = PostgresRecorder::open(
        PostgresConfig::new(url)
            .schema(schema)
            .notify_commits(notify == "on"),
    )
    .expect("open");
    let stream = uuid::Uuid::now_v7().to_string();
    for n in 0..events {
        std::thread::sleep(Duration::from_millis(150));
        recorder
            .append(&[append(&stream, n, 1)], None)
            .expect("append");
        report_commit();
    }
    // Let the notifier send the last announcement before the process ends.
    let deadline = Instant::now() + Duration::from_secs(2);
    while notify == "on" && recorder.commit_notifications_sent() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// Runs the writer in a child process; returns its commit times.
fn run_writer(url: &str, schema: &str, events: u64, notify: bool) -> Vec<u128> {
    let notify = if notify { "on" } else { "off" };
    run_child_writer(
        "wakeup_writer_entry",
        WRITER_ENV,
        &format!("{url} {schema} {events} {notify}"),
    )
}

/// A store in a schema of its own (dropped with it), and the schema's name.
fn open_here(url: &str) -> (PostgresRecorder, String) {
    let schema = unique_schema();
    let here = PostgresRecorder::open(
        PostgresConfig::new(url)
            .schema(schema.clone())
            .drop_schema_on_drop_for_testing(),
    )
    .expect("open");
    (here, schema)
}

#[test]
fn a_commit_in_another_process_wakes_a_listener_within_milliseconds() {
    let Some(url) = postgres_url("wakeups") else {
        return;
    };
    let (here, schema) = open_here(&url);
    let (tx, rx) = mpsc::channel();
    // A poll interval far above what is measured: only notifications can explain wake-ups
    // within it.
    let listener = here.listen_for_commits(Duration::from_secs(30), move || {
        let _ = tx.send(micros_now());
    });
    wait_until_listening(&listener);
    assert_eq!(listener.connections(), 1, "listening");
    let commits = run_writer(&url, &schema, 8, true);
    assert_eq!(commits.len(), 8);
    std::thread::sleep(Duration::from_millis(300));
    let wakes: Vec<u128> = rx.try_iter().collect();
    let mut waits = latencies(&commits, &wakes);
    waits.sort_unstable();
    let (median, p99) = (percentile(&waits, 0.5), percentile(&waits, 0.99));
    println!("WAKEUP commit-to-wake over 8 commits: median {median} µs, p99 {p99} µs");
    assert!(
        p99 < 1_000_000,
        "every commit woke the listener within 1 s: {waits:?}"
    );
    assert!(listener.notifications() >= 1);
    assert_eq!(
        listener.polls(),
        0,
        "no poll fired: the wake-ups were notifications"
    );
    assert!(
        here.max_position().expect("max") > 0,
        "the events are readable here"
    );
}

#[test]
fn a_lost_listener_connection_or_missing_notifications_delay_by_at_most_the_poll_interval() {
    let Some(url) = postgres_url("wakeups") else {
        return;
    };
    let (here, schema) = open_here(&url);
    let (tx, rx) = mpsc::channel();
    let poll = Duration::from_millis(700);
    let listener = here.listen_for_commits(poll, move || {
        let _ = tx.send(micros_now());
    });
    wait_until_listening(&listener);
    // The listener's connection dies: it reconnects by itself and keeps waking.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN \"eventsourcing_%' AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("terminate");
    assert!(!killed.is_empty(), "the listener's backend was found");
    // A writer that sends no notifications at all: only the poll interval wakes us.
    let commits = run_writer(&url, &schema, 4, false);
    assert_eq!(commits.len(), 4);
    std::thread::sleep(poll + Duration::from_millis(300));
    let wakes: Vec<u128> = rx.try_iter().collect();
    let waits = latencies(&commits, &wakes);
    println!("WAKEUP without notifications, poll {poll:?}: waits {waits:?} µs");
    let bound = poll.as_micros() + 400_000;
    assert!(
        waits.iter().all(|&w| w <= bound),
        "each commit seen within the poll interval: {waits:?}"
    );
    assert!(listener.connections() >= 2, "reconnected after the kill");
    assert!(listener.polls() >= 1, "the poll interval fired");
    // And with notifications again, after the reconnect: prompt.
    let commits = run_writer(&url, &schema, 3, true);
    std::thread::sleep(Duration::from_millis(300));
    let wakes: Vec<u128> = rx.try_iter().collect();
    let waits = latencies(&commits, &wakes);
    assert!(
        waits.iter().all(|&w| w < poll.as_micros()),
        "prompt again: {waits:?}"
    );
}
