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
            store
                .append(&[append(&stream, v, 1)], None)
                .expect("append");
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
            .append(&[append(&format!("stream-{i}"), 0, 2)], None)
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
        .append(&[append("stream-0", 2, 1)], None)
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
    let next = again
        .append(&[append("stream-1", 2, 1)], None)
        .expect("append");
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
        .append(&[append("s", 0, 1)], None)
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
        store.append(&[append("s", v, 1)], None).expect("append");
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
    store.append(&[append("s", 0, 3)], None).expect("append");
    let Some(standby) = PgCluster::standby_of(&primary) else {
        assert!(
            std::env::var_os(eventsourcing_tests::REQUIRE_POSTGRES_ENV).is_none(),
            "the standby did not start"
        );
        return;
    };
    store
        .append(&[append("s", 3, 1)], None)
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
        .append(&[append("s", 4, 1)], None)
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
    store
        .append(&[append("s", 0, 1)], None)
        .expect("append before");
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute("BEGIN; SELECT pg_current_xact_id(); PREPARE TRANSACTION 'stuck-2pc'")
        .expect("prepare");
    store.append(&[append("s", 1, 1)], None).expect("append");
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

/// `pg_dump` of schema `schema` from `old`, `pg_restore` into `new`.
fn dump_and_restore(old: &PgCluster, new: &PgCluster, schema: &str) {
    let dump = std::env::temp_dir().join(format!("es-dump-{}.pgdump", uuid::Uuid::now_v7()));
    assert!(
        old.run(&format!(
            "/usr/lib/postgresql/15/bin/pg_dump -h 127.0.0.1 -p {} -U postgres -Fc -n {schema} -f {} postgres",
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
}

/// Burns `n` transaction ids of a cluster, so that it is far ahead of a fresh one.
fn burn_xids(cluster: &PgCluster, n: usize) {
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
    for _ in 0..n {
        client
            .batch_execute("SELECT pg_current_xact_id()")
            .expect("burn an xid");
    }
}

/// Checks a log read from position 1: strictly increasing positions, each stream's versions
/// 1, 2, 3... in position order, and `expected` events in all.
fn check_log(store: &PostgresRecorder, expected: usize, what: &str) -> Vec<u64> {
    use std::collections::HashMap;

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let log = store
        .select_notifications(&NotificationQuery::new(1, 100_000))
        .expect("log");
    let positions: Vec<u64> = log.iter().map(|e| e.position.expect("position")).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{what}: positions strictly increase: {positions:?}"
    );
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for event in &log {
        let last = versions.entry(event.stream_id.as_str()).or_default();
        assert_eq!(
            event.version,
            *last + 1,
            "{what}: stream `{}` in position order",
            event.stream_id
        );
        *last = event.version;
    }
    assert_eq!(log.len(), expected, "{what}: every event readable");
    positions
}

/// Several writers (each its own recorder and pool, as separate processes would be) open a
/// restored store at the same moment and append at once, while one of them repairs the
/// position offset: no position is assigned twice, each writer's positions increase, every
/// new position is above every restored one, and a follower that had caught up before the
/// dump reads every new event.
#[test]
fn writers_opening_a_restored_store_at_once_never_reuse_or_lower_positions() {
    use std::collections::HashSet;
    use std::sync::Barrier;

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    const WRITERS: usize = 4;
    const APPENDS: u64 = 25;
    let Some(old) = PgCluster::start("concurrent repair (old cluster)", &[]) else {
        return;
    };
    let Some(new) = PgCluster::start("concurrent repair (new cluster)", &[]) else {
        return;
    };
    burn_xids(&old, 3000);
    let config = |url: String| PostgresConfig::new(url).schema("busy").pool_size(2);
    let store = PostgresRecorder::open(config(old.url())).expect("open the old store");
    for i in 0..5 {
        store
            .append(&[append(&format!("restored-{i}"), 0, 2)], None)
            .expect("append");
    }
    let caught_up = store.max_position().expect("max");
    drop(store);
    dump_and_restore(&old, &new, "busy");
    drop(old);

    let barrier = Barrier::new(WRITERS);
    let url = new.url();
    let written: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (barrier, url) = (&barrier, url.clone());
                scope.spawn(move || {
                    barrier.wait();
                    let store = PostgresRecorder::open(config(url)).expect("open at once");
                    (0..APPENDS)
                        .flat_map(|v| {
                            store
                                .append(&[append(&format!("writer-{w}"), v, 1)], None)
                                .expect("append")
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect()
    });
    let mut seen = HashSet::new();
    for (w, positions) in written.iter().enumerate() {
        assert!(
            positions.windows(2).all(|p| p[0] < p[1]),
            "writer {w}: its positions increase: {positions:?}"
        );
        assert!(
            positions.iter().all(|p| *p > caught_up),
            "writer {w}: every new position is above the restored ones ({caught_up}): {positions:?}"
        );
        for p in positions {
            assert!(seen.insert(*p), "position {p} assigned twice");
        }
    }
    let reader = PostgresRecorder::open(config(new.url())).expect("reader");
    let total = 10 + WRITERS * usize::try_from(APPENDS).expect("count");
    check_log(&reader, total, "after concurrent writers");
    let followed = reader
        .select_notifications(&NotificationQuery::new(caught_up + 1, 100_000))
        .expect("follow");
    assert_eq!(
        followed.len(),
        total - 10,
        "a follower caught up before the dump sees every new event"
    );
}

/// Point-in-time recovery (a base backup, archived WAL replayed up to a named restore point,
/// then promoted): the recovered events stay readable, new events get positions above every
/// recovered one, and a follower that had read up to the restore point sees the new events.
/// The transaction ids of the lost transactions (after the restore point) are given again by
/// the recovered cluster, so their positions come back for different events: a follower
/// outside the recovered database that had read a lost event would skip the new ones, so the
/// operator raises the positions above what such followers saw
/// (`PostgresRecorder::raise_positions_above`; those followers processed history that no
/// longer exists and need attention anyway). The test prints both positions.
#[test]
fn positions_keep_increasing_across_point_in_time_recovery() {
    use std::time::{Duration, Instant};

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let archive = std::env::temp_dir().join(format!("es-archive-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir(&archive).expect("archive folder");
    let owned = std::process::Command::new("chown")
        .arg("postgres:postgres")
        .arg(&archive)
        .status()
        .is_ok_and(|s| s.success());
    let archive_command = format!("archive_command = 'cp %p {}/%f'", archive.display());
    let Some(primary) = PgCluster::start(
        "point-in-time recovery (primary)",
        &["wal_level = replica", "archive_mode = on", &archive_command],
    ) else {
        let _ = std::fs::remove_dir_all(&archive);
        return;
    };
    assert!(owned, "the archive folder belongs to postgres");
    let config = |url: String| PostgresConfig::new(url).schema("ledger");
    let store = PostgresRecorder::open(config(primary.url())).expect("open");
    for i in 0..5 {
        store
            .append(&[append(&format!("stream-{i}"), 0, 2)], None)
            .expect("append");
    }
    let Some(mut recovered) = PgCluster::base_backup_of(&primary) else {
        panic!("pg_basebackup failed");
    };
    // After the base backup: replayed from the archive.
    store
        .append(&[append("stream-0", 2, 3)], None)
        .expect("append");
    let mut client = postgres::Client::connect(&primary.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute("SELECT pg_create_restore_point('before-mistake')")
        .expect("restore point");
    let caught_up = store.max_position().expect("max");
    let kept = store
        .select_notifications(&NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(kept.len(), 13);
    // After the restore point: lost by the recovery.
    let lost: Vec<u64> = (2..7)
        .flat_map(|v| {
            store
                .append(&[append("stream-1", v, 1)], None)
                .expect("append")
        })
        .collect();
    let segment: String = client
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .expect("switch")
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !archive.join(&segment).exists() {
        assert!(
            Instant::now() < deadline,
            "WAL segment {segment} not archived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(store);
    drop(client);
    drop(primary);

    assert!(
        std::fs::write(recovered.data().join("recovery.signal"), b"").is_ok()
            && recovered.configure(&[
                &format!("restore_command = 'cp {}/%f %p'", archive.display()),
                "recovery_target_name = 'before-mistake'",
                "recovery_target_action = 'promote'",
                "archive_mode = off",
            ]),
        "recovery settings"
    );
    assert!(recovered.start_server(), "the recovered cluster starts");
    let mut client = postgres::Client::connect(&recovered.url(), postgres::NoTls).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .expect("in recovery?")
        .get::<_, bool>(0)
    {
        assert!(Instant::now() < deadline, "recovery did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&archive);

    let store = PostgresRecorder::open(config(recovered.url())).expect("open the recovered store");
    let log = store
        .select_notifications(&NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(
        log, kept,
        "the events up to the restore point, readable, positions kept"
    );
    let positions = store
        .append(&[append("stream-1", 2, 1)], None)
        .expect("append after the recovery");
    assert!(
        positions[0] > caught_up,
        "a new position ({}) is above every recovered one ({caught_up})",
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
        vec![("stream-1", 3)],
        "a follower that had read up to the restore point sees the new event"
    );
    check_log(&store, 14, "after the recovery");
    println!(
        "RELIABILITY point-in-time recovery: lost events had positions {lost:?}; \
         the first new event after the recovery got {}",
        positions[0]
    );
    assert!(
        positions[0] <= lost[lost.len() - 1],
        "the recovered cluster gives the lost transaction ids again (else this test shows nothing)"
    );
    // The operator's repair for followers outside the recovered database that had read the
    // lost events: every new position is then above the highest one they saw.
    let seen = *lost.iter().max().expect("lost");
    assert!(store.raise_positions_above(seen).expect("raise"));
    assert!(
        !store.raise_positions_above(seen).expect("raise again"),
        "idempotent"
    );
    let after = store
        .append(&[append("stream-1", 3, 1)], None)
        .expect("append");
    assert!(
        after[0] > seen,
        "after the raise a new position ({}) is above the lost ones ({seen})",
        after[0]
    );
    check_log(&store, 15, "after the raise");
}

/// A logical-replication subscriber promoted to primary (the subscription dropped): its
/// events came from another cluster, whose transaction ids are far ahead. A recorder that
/// had the subscriber's store open since before the events arrived (so its open found
/// nothing to repair) appends after the promotion: the append finds the store ahead, raises
/// the offset and retries, so its position is above every replicated one and followers see
/// it. A recorder opened after the promotion reads the same log and appends above it.
#[test]
fn positions_keep_increasing_after_promoting_a_logical_replication_subscriber() {
    use std::time::{Duration, Instant};

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let Some(primary) =
        PgCluster::start("logical replication (publisher)", &["wal_level = logical"])
    else {
        return;
    };
    let Some(subscriber) = PgCluster::start("logical replication (subscriber)", &[]) else {
        return;
    };
    burn_xids(&primary, 3000);
    let config = |url: String| PostgresConfig::new(url).schema("shop");
    let store = PostgresRecorder::open(config(primary.url())).expect("open the publisher");
    for i in 0..5 {
        store
            .append(&[append(&format!("stream-{i}"), 0, 2)], None)
            .expect("append");
    }
    // Opened before any event arrives: nothing to repair at its open.
    let early = PostgresRecorder::open(config(subscriber.url())).expect("open the subscriber");
    let mut publisher =
        postgres::Client::connect(&primary.url(), postgres::NoTls).expect("connect");
    publisher
        .batch_execute("CREATE PUBLICATION es_pub FOR TABLE shop.events")
        .expect("publication");
    let mut sub = postgres::Client::connect(&subscriber.url(), postgres::NoTls).expect("connect");
    sub.batch_execute(&format!(
        "CREATE SUBSCRIPTION es_sub CONNECTION 'host=127.0.0.1 port={} user=postgres dbname=postgres' \
         PUBLICATION es_pub",
        primary.port()
    ))
    .expect("subscription");
    // Streamed after the initial copy.
    store
        .append(&[append("stream-0", 2, 2)], None)
        .expect("append");
    let caught_up = store.max_position().expect("max");
    let published = store
        .select_notifications(&NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(published.len(), 12);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let replicated: i64 = sub
            .query_one("SELECT count(*) FROM shop.events", &[])
            .expect("count")
            .get(0);
        if replicated == 12 {
            break;
        }
        assert!(Instant::now() < deadline, "replicated {replicated} of 12");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The promotion: the subscriber stops following and takes the writes.
    sub.batch_execute("DROP SUBSCRIPTION es_sub")
        .expect("promote");
    drop(store);

    let positions = early
        .append(&[append("stream-1", 2, 1)], None)
        .expect("append through the recorder opened before");
    assert!(
        positions[0] > caught_up,
        "a new position ({}) is above every replicated one ({caught_up})",
        positions[0]
    );
    let followed = early
        .select_notifications(&NotificationQuery::new(caught_up + 1, 100))
        .expect("follow");
    assert_eq!(
        followed
            .iter()
            .map(|e| (e.stream_id.as_str(), e.version))
            .collect::<Vec<_>>(),
        vec![("stream-1", 3)],
        "a follower caught up on the publisher sees the new event"
    );
    let fresh = PostgresRecorder::open(config(subscriber.url())).expect("open after");
    let log = fresh
        .select_notifications(&NotificationQuery::new(1, 12))
        .expect("log");
    assert_eq!(log, published, "the replicated events, positions kept");
    let next = fresh
        .append(&[append("stream-2", 2, 1)], None)
        .expect("append");
    assert!(next[0] > positions[0]);
    check_log(&fresh, 14, "after the promotion");
}

/// A store filled with another cluster's rows while writers have it open (what logical
/// replication or `pg_restore --data-only` does; here raw inserts of rows with positions far
/// ahead): one writer's append is in flight, holding its transaction, when the rows arrive,
/// and another writer's append finds the store ahead and repairs the offset. The repair must
/// wait for the in-flight append: otherwise readers jump to the new rows' positions while the
/// in-flight append still commits a low position behind them, and a follower never sees it.
#[test]
fn a_store_filled_under_open_writers_never_hides_an_in_flight_append() {
    use std::collections::HashSet;
    use std::time::Duration;

    use eventsourcing::persistence::{ApplicationRecorder, NotificationQuery};

    let Some(cluster) = PgCluster::start("store filled under open writers", &[]) else {
        return;
    };
    let config = || PostgresConfig::new(cluster.url()).schema("filled");
    let writer = PostgresRecorder::open(config()).expect("open");
    let slow = PostgresRecorder::open(
        config().hold_in_transaction_for_testing(Duration::from_millis(600)),
    )
    .expect("open the slow writer");
    let follower = PostgresRecorder::open(config()).expect("open the follower");
    writer.append(&[append("a", 0, 3)], None).expect("append");
    let mut seen: Vec<u64> = Vec::new();
    let follow = |seen: &mut Vec<u64>| {
        let from = seen.last().map_or(1, |p| p + 1);
        let page = follower
            .select_notifications(&NotificationQuery::new(from, 1000))
            .expect("follow");
        seen.extend(page.iter().map(|e| e.position.expect("position")));
    };
    follow(&mut seen);
    assert_eq!(seen.len(), 3);

    let in_flight = std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| {
            slow.append(&[append("w", 0, 1)], None)
                .expect("slow append")
        });
        std::thread::sleep(Duration::from_millis(150));
        // Rows of another cluster arrive, far ahead of this one's transaction ids.
        let mut loader =
            postgres::Client::connect(&cluster.url(), postgres::NoTls).expect("connect");
        loader
            .batch_execute(
                "INSERT INTO filled.events (position, stream_id, version, event_id, topic, \
                 schema_version, \"timestamp\", payload) OVERRIDING SYSTEM VALUE \
                 SELECT m + 1000000000000 + (v - 1) * 20 * 1048576, 'loaded', v, gen_random_uuid(), \
                 'Test.Happened', 1, 0, '\\x7b7d'::bytea \
                 FROM (SELECT max(position) AS m FROM filled.events) x, generate_series(1, 2) v",
            )
            .expect("load");
        writer
            .append(&[append("a", 3, 1)], None)
            .expect("append after the load");
        follow(&mut seen);
        in_flight.join().expect("slow writer")
    });
    follow(&mut seen);
    let log: Vec<u64> = follower
        .select_notifications(&NotificationQuery::new(1, 1000))
        .expect("log")
        .iter()
        .map(|e| e.position.expect("position"))
        .collect();
    let followed: HashSet<u64> = seen.iter().copied().collect();
    let missed: Vec<u64> = log
        .iter()
        .copied()
        .filter(|p| !followed.contains(p))
        .collect();
    assert!(
        missed.is_empty(),
        "the follower never saw {missed:?} (the in-flight append was at {in_flight:?}); it saw {seen:?}"
    );
    assert_eq!(log.len(), 3 + 1 + 2 + 1);
}
