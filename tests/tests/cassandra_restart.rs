//! A Cassandra server killed (SIGKILL) and restarted under a live recorder: while it is down,
//! every call is a typed, transient error (never a panic, never a hang past the request
//! timeout); once it is back, the same recorder works again and every acknowledged append is
//! there (the test server syncs its commit log before it acknowledges).
//!
//! It restarts the server that `scripts/services.sh` started (the pid file under
//! `$EVENTSOURCING_SERVICES_RUN`, default `/tmp/eventsourcing-services`), so it lives alone in
//! this test binary: cargo runs test binaries one after the other, and no other test uses the
//! server meanwhile. Skipped loudly without `EVENTSOURCING_TEST_CASSANDRA_URL`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use eventsourcing::persistence::{
    AggregateRecorder, CassandraConfig, CassandraRecorder, EventQuery,
};
use eventsourcing_tests::conformance::append;

fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

fn pid_file() -> PathBuf {
    let run = std::env::var("EVENTSOURCING_SERVICES_RUN")
        .unwrap_or_else(|_| "/tmp/eventsourcing-services".into());
    PathBuf::from(run).join("cassandra/cassandra.pid")
}

#[test]
fn recorder_survives_a_server_kill_and_restart() {
    let Some(url) = eventsourcing_tests::cassandra_url("cassandra restart") else {
        return;
    };
    let Ok(pid) = std::fs::read_to_string(pid_file()) else {
        assert!(
            std::env::var_os(eventsourcing_tests::REQUIRE_CASSANDRA_ENV).is_none(),
            "no Cassandra pid file at {}: start the server with scripts/services.sh",
            pid_file().display()
        );
        eprintln!("\n!!!!!!!!!! SKIPPED cassandra restart: the server was not started by scripts/services.sh !!!!!!!!!!\n");
        return;
    };
    let mut config = CassandraConfig::from_url(&url).expect("URL");
    config.keyspace = format!(
        "es_restart_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    config.request_timeout = Duration::from_secs(3);
    let store = CassandraRecorder::open(config.drop_keyspace_on_drop_for_testing()).expect("open");
    let stream = uuid::Uuid::now_v7().to_string();
    let mut version = 0;
    for _ in 0..20 {
        store
            .append(&[append(&stream, version, 3)], None)
            .expect("append");
        version += 3;
    }

    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid}");
    // Down: typed, transient errors within the request timeout.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let error = store
        .append(&[append(&stream, version, 1)], None)
        .expect_err("the server is down");
    assert!(error.is_transient(), "{error:?}");
    let error = store
        .select_events(&stream, &EventQuery::all())
        .expect_err("the server is down");
    assert!(error.is_transient(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    let status = Command::new("bash")
        .arg(services_script())
        .args(["start", "cassandra"])
        .status()
        .expect("restart");
    assert!(status.success(), "scripts/services.sh start cassandra");
    // Back: the driver reconnects by itself; every acknowledged event survived the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        match store.select_events(&stream, &EventQuery::all()) {
            Ok(events) => break events,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the driver to reconnect: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("no reconnection within 60 s: {e}"),
        }
    };
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=version).collect::<Vec<_>>()
    );
    // The failed append did not land: the stream goes on from where it was.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.append(&[append(&stream, version, 1)], None) {
            Ok(_) => break,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("append after restart: {e}"),
        }
    }
}
