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

/// A store dumped from one cluster and restored into a fresh one (whose transaction ids are
/// far behind the stored positions): the restored events stay readable, new events get
/// higher positions than every restored one, and a follower that had caught up on the old
/// cluster sees every new event. The open raises the store's position offset.
#[test]
fn positions_keep_increasing_across_dump_and_restore() {
    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let Some(old) = PgCluster::start("dump and restore (old cluster)", &[]) else {
        return;
    };
    let Some(new) = PgCluster::start("dump and restore (new cluster)", &[]) else {
        return;
    };
    // The old cluster has lived longer: its transaction ids are thousands ahead.
    let mut client = postgres::Client::connect(&old.url(), postgres::NoTls).expect("connect");
    for _ in 0..3000 {
        client
            .batch_execute("SELECT pg_current_xact_id()")
            .expect("burn an xid");
    }
    let config = |url: String| PostgresConfig::new(url).schema("shop");
    let store = PostgresRecorder::open(config(old.url())).expect("open the old store");
    for i in 0..5 {
        store
            .append(&[append(&format!("stream-{i}"), 0, 2)])
            .expect("append");
    }
    let caught_up = store.max_position().expect("max");
    let before = store
        .select_notifications(&NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(before.len(), 10);
    drop(store);

    let dump = std::env::temp_dir().join(format!("es-dump-{}.pgdump", uuid::Uuid::now_v7()));
    assert!(
        old.run(&format!(
            "/usr/lib/postgresql/15/bin/pg_dump -h 127.0.0.1 -p {} -U postgres -Fc -n shop -f {} postgres",
            old.port(),
            dump.display()
        )),
        "pg_dump"
    );
    assert!(
        new.run(&format!(
            "/usr/lib/postgresql/15/bin/pg_restore -h 127.0.0.1 -p {} -U postgres -d postgres {}",
            new.port(),
            dump.display()
        )),
        "pg_restore"
    );
    let _ = std::fs::remove_file(&dump);

    let store = PostgresRecorder::open(config(new.url())).expect("open the restored store");
    let restored = store
        .select_notifications(&NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(
        restored, before,
        "the restored events are readable, positions kept"
    );
    let positions = store
        .append(&[append("stream-0", 2, 1)])
        .expect("append after the restore");
    assert!(
        positions[0] > caught_up,
        "a new position ({}) is above every restored one ({caught_up})",
        positions[0]
    );
    let followed = store
        .select_notifications(&NotificationQuery::new(caught_up + 1, 100))
        .expect("follow");
    assert_eq!(
        followed
            .iter()
            .map(|e| (e.stream_id.as_str(), e.version))
            .collect::<Vec<_>>(),
        vec![("stream-0", 3)],
        "a follower that had caught up sees the new event"
    );
    // Another process opening the store later changes nothing, and keeps the order.
    drop(store);
    let again = PostgresRecorder::open(config(new.url())).expect("reopen");
    let next = again.append(&[append("stream-1", 2, 1)]).expect("append");
    assert!(next[0] > positions[0]);
}

/// A cluster whose transaction ids (epoch 4,000 and up: ids above 2^43) no longer fit a
/// 64-bit position of `xid * 2^20`: the append fails before it commits, with the typed
/// `PositionOverflow`, and nothing is written (it used to commit and then report a corrupt
/// negative position, leaving the stream unreadable).
#[test]
fn positions_that_would_overflow_fail_before_commit() {
    use eventsourcing::persistence::PersistenceError;

    let Some(cluster) = PgCluster::start("position overflow", &[]) else {
        return;
    };
    // Move the cluster to transaction-id epoch 4,000 (offline), as a very old cluster is.
    assert!(cluster.ctl("stop"), "stop");
    assert!(
        cluster.run(&format!(
            "/usr/lib/postgresql/15/bin/pg_resetwal -e 4000 -D {} >/dev/null",
            cluster.data().display()
        )),
        "pg_resetwal"
    );
    assert!(cluster.ctl("start"), "start");
    let store =
        PostgresRecorder::open(PostgresConfig::new(cluster.url()).schema("old")).expect("open");
    let error = store
        .append(&[append("s", 0, 1)])
        .expect_err("positions overflow");
    assert!(
        matches!(error, PersistenceError::PositionOverflow { .. }),
        "{error:?}"
    );
    assert!(store
        .select_events("s", &EventQuery::all())
        .expect("the stream stays readable")
        .is_empty());
}

/// An old transaction anywhere in the cluster holds the readable horizon back. Read-your-writes
/// waits for it at most once (the configured timeout) and then stops waiting while the
/// horizon stays stuck, so that a service doing save-then-read does not pay the timeout on
/// every request; the stall is counted. Once the blocker ends, reads see everything again.
#[test]
fn read_your_writes_waits_at_most_once_behind_a_stuck_horizon() {
    use std::time::{Duration, Instant};

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let Some(cluster) = PgCluster::start("read-your-writes under a long transaction", &[]) else {
        return;
    };
    let store = PostgresRecorder::open(
        PostgresConfig::new(cluster.url())
            .schema("ryw")
            .read_own_writes_timeout(Duration::from_millis(800)),
    )
    .expect("open");
    let mut blocker = postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
    let mut tx = blocker.transaction().expect("begin");
    tx.batch_execute("SELECT pg_current_xact_id()")
        .expect("take an xid");
    let mut waits = Vec::new();
    for v in 0..4 {
        store.append(&[append("s", v, 1)]).expect("append");
        let started = Instant::now();
        store
            .select_notifications(&NotificationQuery::new(1, 10))
            .expect("read");
        waits.push(started.elapsed());
    }
    assert!(
        waits[0] >= Duration::from_millis(700),
        "the first read waits: {waits:?}"
    );
    assert!(
        waits[1..].iter().all(|w| *w < Duration::from_millis(300)),
        "later reads do not wait again: {waits:?}"
    );
    assert_eq!(
        store.read_own_writes_stalls(),
        1,
        "the stall is counted once"
    );
    tx.rollback().expect("end the blocker");
    let read = store
        .select_notifications(&NotificationQuery::new(1, 10))
        .expect("read");
    assert_eq!(
        read.len(),
        4,
        "everything readable once the blocker is gone"
    );
}

/// A hot standby (a streaming replica, read-only): the recorder opens a current store there
/// without DDL or locks, reads the events and the log, and a write is the typed `ReadOnly`.
#[test]
fn a_hot_standby_opens_and_reads_and_refuses_writes() {
    use std::time::{Duration, Instant};

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery, PersistenceError};

    let Some(primary) = PgCluster::start("hot standby (primary)", &[]) else {
        return;
    };
    let config = |url: String| PostgresConfig::new(url).schema("replicated");
    let store = PostgresRecorder::open(config(primary.url())).expect("open the primary");
    store.append(&[append("s", 0, 3)]).expect("append");
    let Some(standby) = PgCluster::standby_of(&primary) else {
        assert!(
            std::env::var_os(eventsourcing_tests::REQUIRE_POSTGRES_ENV).is_none(),
            "the standby did not start"
        );
        return;
    };
    store
        .append(&[append("s", 3, 1)])
        .expect("append after the base backup");
    let replica = PostgresRecorder::open(config(standby.url())).expect("open on the standby");
    // Streaming replication is asynchronous: wait (bounded) for the last append.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = replica
            .select_events("s", &EventQuery::all())
            .expect("read");
        if events.len() == 4 || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(events.len(), 4, "the standby reads the stream");
    assert_eq!(
        replica
            .select_notifications(&NotificationQuery::new(1, 10))
            .expect("the log")
            .len(),
        4
    );
    let error = replica
        .append(&[append("s", 4, 1)])
        .expect_err("a standby is read-only");
    assert!(
        matches!(error, PersistenceError::ReadOnly { .. }),
        "{error:?}"
    );
}

/// A prepared transaction (two-phase commit) holds the horizon back like a running one, and
/// survives restarts; `follower_lag` names it so that an operator can end it. A follower
/// reading the log meanwhile gets what is readable (gap-free, without the held event) and the
/// stall is counted once, never silently: lag and blocker are reported across a restart too.
#[test]
fn follower_lag_names_a_prepared_transaction() {
    use std::time::Duration;

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let Some(cluster) =
        PgCluster::start("prepared transaction", &["max_prepared_transactions = 4"])
    else {
        return;
    };
    let config = || {
        PostgresConfig::new(cluster.url())
            .schema("twopc")
            .read_own_writes_timeout(Duration::from_millis(300))
    };
    let store = PostgresRecorder::open(config()).expect("open");
    store.append(&[append("s", 0, 1)]).expect("append before");
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute("BEGIN; SELECT pg_current_xact_id(); PREPARE TRANSACTION 'stuck-2pc'")
        .expect("prepare");
    store.append(&[append("s", 1, 1)]).expect("append");
    let check = |store: &PostgresRecorder, when: &str| {
        let lag = store.follower_lag().expect("lag");
        assert!(lag.is_behind(), "{when}: {lag:?}");
        let blocker = lag.blocker.expect("a blocker");
        assert_eq!(
            blocker.prepared.as_deref(),
            Some("stuck-2pc"),
            "{when}: {blocker:?}"
        );
        assert_eq!(blocker.state.as_deref(), Some("prepared"), "{when}");
    };
    check(&store, "while prepared");
    let read = store
        .select_notifications(&NotificationQuery::new(1, 10))
        .expect("read");
    assert_eq!(
        read.len(),
        1,
        "the held event is not readable yet, nothing skipped"
    );
    assert_eq!(store.read_own_writes_stalls(), 1, "the stall is counted");
    // The prepared transaction survives a restart, and is still named.
    drop(store);
    drop(client);
    assert!(cluster.ctl("restart"), "restart");
    let store = PostgresRecorder::open(config()).expect("reopen");
    check(&store, "after a restart");
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute("ROLLBACK PREPARED 'stuck-2pc'")
        .expect("end it");
    assert!(!store.follower_lag().expect("lag").is_behind());
    assert_eq!(
        store
            .select_notifications(&NotificationQuery::new(1, 10))
            .expect("read")
            .len(),
        2,
        "everything readable once it is ended"
    );
}
