//! Commits to a SQLite file by another OS process, noticed within milliseconds through
//! `listen_for_commits` (`PRAGMA data_version`), with a poll interval far longer than that.

use std::sync::mpsc;
use std::time::Duration;

use eventsourcing::persistence::{AggregateRecorder, SqliteConfig, SqliteRecorder};
use eventsourcing_tests::conformance::append;
use eventsourcing_tests::support::TempDb;
use eventsourcing_tests::wakeups::{
    latencies, micros_now, percentile, report_commit, run_child_writer, wait_until_listening,
};

const WRITER_ENV: &str = "ES_SQLITE_WAKEUP_WRITER";

/// The child's entry point: does nothing unless the parent set `ES_SQLITE_WAKEUP_WRITER`
/// (to `PATH EVENTS`). Appends `EVENTS` events 100 ms apart, reporting each commit.
#[test]
fn sqlite_wakeup_writer_entry() {
    let Ok(spec) = std::env::var(WRITER_ENV) else {
        return;
    };
    let (path, events) = spec.rsplit_once(' ').expect("PATH EVENTS");
    let events: u64 = events.parse().expect("count");
    let recorder = SqliteRecorder::open(SqliteConfig::new(path)).expect("open");
    let stream = uuid::Uuid::now_v7().to_string();
    for n in 0..events {
        std::thread::sleep(Duration::from_millis(100));
        recorder
            .append(&[append(&stream, n, 1)], None)
            .expect("append");
        report_commit();
    }
}

#[test]
fn a_commit_by_another_process_wakes_a_listener_within_milliseconds() {
    let file = TempDb::new("sqlite-wakeups");
    let here = SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open");
    let (tx, rx) = mpsc::channel();
    let listener = here.listen_for_commits(Duration::from_secs(30), move || {
        let _ = tx.send(micros_now());
    });
    wait_until_listening(&listener);
    let spec = format!("{} 6", file.path().display());
    let commits = run_child_writer("sqlite_wakeup_writer_entry", WRITER_ENV, &spec);
    assert_eq!(commits.len(), 6);
    std::thread::sleep(Duration::from_millis(100));
    let wakes: Vec<u128> = rx.try_iter().collect();
    let mut waits = latencies(&commits, &wakes);
    waits.sort_unstable();
    let (median, p99) = (percentile(&waits, 0.5), percentile(&waits, 0.99));
    println!("WAKEUP sqlite commit-to-wake over 6 commits: median {median} µs, p99 {p99} µs");
    assert!(
        p99 < 500_000,
        "every commit noticed within 0.5 s: {waits:?}"
    );
    assert_eq!(
        listener.polls(),
        0,
        "noticed through data_version, not the poll"
    );
    assert!(listener.notifications() >= 1);
}
