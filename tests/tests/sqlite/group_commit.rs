//! Group commit: concurrent appends on one SQLite store share transactions (and so fsyncs),
//! while each append is still checked and committed on its own terms: a conflict fails only
//! its own append, every acknowledged append is visible to another connection (it has
//! committed) the moment it returns, and so is what a conflicting append conflicted with.

use eventsourcing::Conflict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::persistence::{
    AggregateRecorder, EventQuery, PersistenceError, SqliteConfig, SqliteRecorder,
};
use eventsourcing_tests::conformance::append;
use eventsourcing_tests::support::TempDb;
use uuid::Uuid;

const WRITERS: usize = 8;
const ROUNDS: u64 = 40;

fn version_of(recorder: &SqliteRecorder, stream: &str) -> u64 {
    recorder
        .select_events(stream, &EventQuery::all())
        .expect("read")
        .last()
        .map_or(0, |e| e.version)
}

#[test]
fn concurrent_appends_share_commits_and_fail_only_on_their_own_conflicts() {
    let file = TempDb::new("sqlite-group-commit");
    let recorder = Arc::new(SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open"));
    // Another connection, as another process would read: it sees committed rows only.
    let observer = Arc::new(SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open"));
    let contested = Uuid::now_v7().to_string();
    let contested_ok = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (recorder, observer) = (recorder.clone(), observer.clone());
            let (contested, contested_ok, start) =
                (contested.clone(), contested_ok.clone(), start.clone());
            thread::spawn(move || {
                let own = Uuid::now_v7().to_string();
                start.wait();
                for round in 0..ROUNDS {
                    // Its own stream: never contested, so it must never fail, whatever the
                    // other members of its group do.
                    recorder
                        .append(&[append(&own, round, 1)], None)
                        .unwrap_or_else(|e| panic!("own stream, round {round}: {e}"));
                    assert_eq!(
                        version_of(&observer, &own),
                        round + 1,
                        "an acknowledged append is committed"
                    );
                    // The contested stream: a racy expected version, often stale.
                    let seen = version_of(&recorder, &contested);
                    match recorder.append(&[append(&contested, seen, 1)], None) {
                        Ok(_) => {
                            contested_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(PersistenceError::Conflict(Conflict { actual, .. })) => {
                            // What it conflicted with is committed: a retry reads it.
                            assert!(
                                version_of(&observer, &contested) >= actual,
                                "a conflict with rows another connection cannot see yet"
                            );
                        }
                        Err(e) => panic!("contested stream: {e}"),
                    }
                }
                own
            })
        })
        .collect();
    let owns: Vec<String> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    drop(observer);
    let reopened = SqliteRecorder::open(SqliteConfig::new(file.path())).expect("reopen");
    for own in &owns {
        assert_eq!(version_of(&reopened, own), ROUNDS);
    }
    let contested_events = reopened
        .select_events(&contested, &EventQuery::all())
        .expect("read");
    let versions: Vec<u64> = contested_events.iter().map(|e| e.version).collect();
    let ok = contested_ok.load(Ordering::Relaxed);
    assert_eq!(
        versions,
        (1..=ok).collect::<Vec<_>>(),
        "contiguous, one per success"
    );
    let appends = WRITERS as u64 * ROUNDS + ok;
    let commits = recorder.group_commits();
    println!("GROUP_COMMIT appends={appends} commits={commits}");
    assert!(
        commits < appends,
        "{appends} appends took {commits} commits: none shared one"
    );
}

/// More appenders than a group holds (64): the lead passes from group to group, every append
/// commits, and none waits for ever (a hang fails the test after 60 s).
#[test]
fn more_appenders_than_a_group_holds_all_commit() {
    const THREADS: usize = 96;
    const EACH: u64 = 5;
    let file = TempDb::new("sqlite-group-commit-many");
    let recorder = Arc::new(SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open"));
    let start = Arc::new(Barrier::new(THREADS));
    let (done, finished) = std::sync::mpsc::channel();
    for _ in 0..THREADS {
        let (recorder, start, done) = (recorder.clone(), start.clone(), done.clone());
        thread::spawn(move || {
            let own = Uuid::now_v7().to_string();
            for round in 0..EACH {
                // All at once, each round: more than a group holds arrive together, and no
                // later arrival is there to lead what the first groups leave queued.
                start.wait();
                recorder
                    .append(&[append(&own, round, 1)], None)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let _ = done.send(own);
        });
    }
    drop(done);
    let mut owns = Vec::new();
    for _ in 0..THREADS {
        match finished.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(own) => owns.push(own),
            Err(e) => panic!(
                "{} of {THREADS} appenders finished, the others did not: {e}",
                owns.len()
            ),
        }
    }
    let reopened = SqliteRecorder::open(SqliteConfig::new(file.path())).expect("reopen");
    for own in &owns {
        assert_eq!(version_of(&reopened, own), EACH);
    }
    let appends = THREADS as u64 * EACH;
    let commits = recorder.group_commits();
    println!("GROUP_COMMIT appends={appends} commits={commits}");
    assert!(
        commits < appends,
        "{appends} appends took {commits} commits"
    );
}
