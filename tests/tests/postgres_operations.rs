//! Guarantees through server operations, on throwaway PostgreSQL clusters that each test
//! starts itself (`support::PgCluster`, run as the `postgres` user; never the shared server).

use std::sync::Arc;

use eventsourcing::persistence::postgres::SynchronousCommit;
use eventsourcing::persistence::{
    AggregateRecorder, EventQuery, PostgresConfig, PostgresRecorder, Storage,
};
use eventsourcing_tests::conformance::append;
use eventsourcing_tests::support::PgCluster;

/// A server whose configuration says `synchronous_commit = off` (and whose WAL writer waits
/// 10 s), crashed (`pg_ctl stop -m immediate`) right after 30 acknowledged appends: with the
/// recorder's pinned `synchronous_commit = on` every acknowledged append survives. The same
/// run with the documented unsafe relaxation (`synchronous_commit=off` in the URL) loses
/// appends, which shows that the crash is real and the check can fail.
#[test]
fn acknowledged_appends_survive_a_crash_of_a_server_with_synchronous_commit_off() {
    let settings = [
        "synchronous_commit = off",
        "wal_writer_delay = 10000ms",
        "wal_writer_flush_after = 1GB",
    ];
    let Some(cluster) = PgCluster::start("synchronous_commit crash", &settings) else {
        return;
    };
    let run = |mode: SynchronousCommit| -> (u64, u64) {
        let schema = format!("crash_{}", mode.name());
        let store: Arc<dyn Storage> = Arc::new(
            PostgresRecorder::open(
                PostgresConfig::new(cluster.url())
                    .schema(&schema)
                    .synchronous_commit(mode),
            )
            .expect("open"),
        );
        let stream = uuid::Uuid::now_v7().to_string();
        let acked = 30;
        for v in 0..acked {
            store.append(&[append(&stream, v, 1)]).expect("append");
        }
        drop(store);
        assert!(cluster.ctl_mode("stop", "immediate"), "crash the server");
        assert!(cluster.ctl("start"), "restart it");
        let store = PostgresRecorder::open(PostgresConfig::new(cluster.url()).schema(&schema))
            .expect("reopen");
        let found = store
            .select_events(&stream, &EventQuery::all())
            .expect("select")
            .len() as u64;
        (acked, found)
    };
    let (acked, found) = run(SynchronousCommit::On);
    assert_eq!(found, acked, "every acknowledged append survives the crash");
    let (acked, found) = run(SynchronousCommit::Off);
    eprintln!("RELIABILITY synchronous_commit=off: {found} of {acked} acknowledged appends survived the crash");
    assert!(
        found < acked,
        "the crash did not lose anything even with synchronous_commit=off: the test would not catch a missing pin"
    );
}
