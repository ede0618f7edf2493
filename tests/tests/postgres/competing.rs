//! Competing instances of one process application in separate OS processes over PostgreSQL:
//! three instances share the upstream, one is killed with SIGKILL in mid-stream and one is
//! stopped with SIGTERM; a paused instance whose leases expired cannot commit when it
//! resumes. Every upstream event is applied exactly once downstream, in per-stream order.

use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing_tests::competing::{
    assert_all_copied_once, copies, copy_count, wait_for_copies, write_tickers, Instance,
};
use eventsourcing_tests::{postgres_url, unique_schema};

const EXE: &str = env!("CARGO_BIN_EXE_competing_instance");

/// The URLs of a fresh upstream and a fresh downstream schema.
fn urls(test: &str) -> Option<(String, String)> {
    let base = postgres_url(test)?;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = |schema: String| format!("{base}{separator}schema={schema}");
    Some((url(unique_schema()), url(unique_schema())))
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Whether every partition lease of the copier is held, by one of `owners` only.
fn all_held_by(downstream: &Application, partitions: usize, owners: &[&str]) -> bool {
    let leases = downstream
        .event_store()
        .recorder()
        .leases()
        .expect("PostgreSQL keeps leases");
    let listed = leases
        .list_leases("copier/partition/")
        .expect("list leases");
    // A lease's owner is the instance's id and a part random to its process.
    let id = |owner: &str| {
        owner
            .rsplit_once('~')
            .map_or(owner, |(id, _)| id)
            .to_owned()
    };
    listed.len() == partitions
        && listed
            .iter()
            .all(|l| l.is_held() && owners.contains(&id(&l.owner).as_str()))
}

#[test]
fn three_instances_share_the_work_and_survive_a_kill_and_a_stop(
) -> Result<(), Box<dyn std::error::Error>> {
    let Some((up, down)) = urls("three_instances_share_the_work_and_survive_a_kill_and_a_stop")
    else {
        return Ok(());
    };
    let upstream = Application::open(&up)?;
    let downstream = Application::open(&down)?;
    let ttl = Duration::from_millis(1000);
    let settings = [
        ("PARTITIONS", "8"),
        ("LEASE_TTL_MS", "1000"),
        ("WORK_MS", "2"),
    ];
    let mut a = Instance::start(EXE, "instance-a", &up, &down, &settings);
    let mut b = Instance::start(EXE, "instance-b", &up, &down, &settings);
    let mut c = Instance::start(EXE, "instance-c", &up, &down, &settings);
    assert!(
        wait_until(Duration::from_secs(20), || !a.held().is_empty()
            && !b.held().is_empty()
            && !c.held().is_empty()),
        "the three instances share the partitions"
    );
    let mut written = write_tickers(&upstream, 60, 9);
    assert!(wait_for_copies(&downstream, 60, Duration::from_secs(20)));
    assert!(copy_count(&downstream) < 600, "killed in mid-stream");

    // SIGKILL: no release, the leases expire.
    a.signal("KILL");
    let killed_at = Instant::now();
    written.extend(write_tickers(&upstream, 30, 9));
    assert!(
        wait_until(Duration::from_secs(20), || all_held_by(
            &downstream,
            8,
            &["instance-b", "instance-c"]
        )),
        "the killed instance's partitions are taken over"
    );
    let takeover = killed_at.elapsed();
    assert!(
        takeover < ttl + ttl / 3 * 2 + Duration::from_millis(700),
        "taken over within the lease time and a heartbeat: {takeover:?}"
    );
    assert_eq!(a.wait(Duration::from_secs(5)), Some(false), "killed");

    // SIGTERM: the instance finishes its event, releases its leases and exits cleanly; the
    // last one takes everything well before the leases would have expired.
    b.signal("TERM");
    let stopped_at = Instant::now();
    assert_eq!(
        b.wait(Duration::from_secs(10)),
        Some(true),
        "a graceful stop exits cleanly"
    );
    assert!(
        b.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.starts_with("STOPPED instance-b partitions= ")),
        "the stopped instance released its partitions"
    );
    assert!(
        wait_until(Duration::from_secs(20), || all_held_by(
            &downstream,
            8,
            &["instance-c"]
        )),
        "the last instance takes every partition"
    );
    let handover = stopped_at.elapsed();
    assert!(
        handover < ttl,
        "released leases move without waiting for expiry: {handover:?}"
    );

    written.extend(write_tickers(&upstream, 10, 9));
    assert_all_copied_once(&written, &downstream, Duration::from_secs(60));
    let (_, by_instance) = copies(&downstream);
    assert_eq!(
        by_instance.len(),
        3,
        "all three did some of the work: {by_instance:?}"
    );
    c.signal("TERM");
    assert_eq!(c.wait(Duration::from_secs(10)), Some(true));
    Ok(())
}

#[test]
fn a_paused_instance_whose_leases_expired_cannot_commit_after_it_resumes(
) -> Result<(), Box<dyn std::error::Error>> {
    let Some((up, down)) =
        urls("a_paused_instance_whose_leases_expired_cannot_commit_after_it_resumes")
    else {
        return Ok(());
    };
    let upstream = Application::open(&up)?;
    let downstream = Application::open(&down)?;
    // The instance prints a line when it starts an event's work and one when it ends it: it
    // is stopped in the middle of one, with a commit to make when it resumes.
    let settings = [
        ("PARTITIONS", "4"),
        ("LEASE_TTL_MS", "400"),
        ("WORK_MS", "300"),
        ("TRACE", "1"),
    ];
    let written = write_tickers(&upstream, 4, 3);
    let mut a = Instance::start(EXE, "instance-a", &up, &down, &settings);
    assert!(wait_until(Duration::from_secs(20), || copy_count(
        &downstream
    ) >= 2));
    let mut stopped_in_work = false;
    for _ in 0..10 {
        assert!(wait_until(Duration::from_secs(10), || a
            .last_line()
            .starts_with("WORK")));
        a.signal("STOP");
        std::thread::sleep(Duration::from_millis(50));
        if a.last_line().starts_with("WORK") {
            stopped_in_work = true;
            break;
        }
        a.signal("CONT");
    }
    assert!(stopped_in_work, "stopped in the middle of an event's work");
    let mut b = Instance::start(EXE, "instance-b", &up, &down, &settings);
    assert!(
        wait_until(Duration::from_secs(20), || all_held_by(
            &downstream,
            4,
            &["instance-b"]
        )),
        "the paused instance's leases expire and move"
    );
    // Resumed while its partitions are someone else's: whatever it was doing cannot commit.
    a.signal("CONT");
    assert_all_copied_once(&written, &downstream, Duration::from_secs(60));
    // Its in-flight commit was refused by the fence; later it may rejoin and commit with new
    // leases.
    assert!(
        wait_until(Duration::from_secs(15), || a.fenced() >= 1),
        "the resumed instance's commit was fenced: {:#?}",
        a.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    );

    for instance in [&mut a, &mut b] {
        instance.signal("TERM");
        assert_eq!(instance.wait(Duration::from_secs(10)), Some(true));
    }
    Ok(())
}

/// Two commits under one lease and epoch at once (a retry after a lost connection, whose
/// first statement still runs on the server), for overlapping ranges of one partition: the
/// second waits for the first and is refused as already tracked, so nothing is applied twice.
/// (A fence alone does not serialise them: both hold the lease.)
#[test]
fn two_commits_under_one_lease_at_once_apply_once() -> Result<(), Box<dyn std::error::Error>> {
    use eventsourcing::persistence::{
        AggregateRecorder, PersistenceError, PostgresConfig, PostgresRecorder, ProcessRecorder,
        Tracking,
    };
    use eventsourcing_tests::conformance::append;
    let Some(url) = postgres_url("two_commits_under_one_lease_at_once_apply_once") else {
        return Ok(());
    };
    let schema = unique_schema();
    let slow = PostgresRecorder::open(
        PostgresConfig::new(url.as_str())
            .schema(schema.clone())
            .hold_in_transaction_for_testing(Duration::from_millis(400)),
    )?;
    let fast = PostgresRecorder::open(
        PostgresConfig::new(url.as_str())
            .schema(schema)
            .drop_schema_on_drop_for_testing(),
    )?;
    let leases = fast.leases().ok_or("leases")?;
    let lease = leases
        .acquire_lease(
            "copier/partition/8/3",
            "instance-a",
            Duration::from_secs(30),
        )?
        .ok_or("free")?;
    let first = Tracking::page("tickers#3/8", 40, 42).fenced(lease.clone());
    let retry = Tracking::page("tickers#3/8", 40, 45).fenced(lease);
    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        let slow_commit = scope.spawn(|| slow.append(&[append("copy-1", 0, 1)], Some(&first)));
        std::thread::sleep(Duration::from_millis(100));
        let retried = fast.append(&[append("copy-2", 0, 1)], Some(&retry));
        assert!(slow_commit.join().map_err(|_| "panicked")?.is_ok());
        assert!(
            matches!(retried, Err(PersistenceError::AlreadyTracked { .. })),
            "the overlapping commit is refused: {retried:?}"
        );
        Ok(())
    })?;
    assert_eq!(fast.max_tracking_position("tickers#3/8")?, Some(42));
    assert!(fast
        .select_events("copy-2", &eventsourcing::persistence::EventQuery::all())?
        .is_empty());
    Ok(())
}

/// A store created before the leases table existed still opens for a role that may only
/// read (no DDL on open); the first lease operation of a writer creates the table.
#[test]
fn a_store_without_the_leases_table_opens_read_only_and_gets_it_on_first_use(
) -> Result<(), Box<dyn std::error::Error>> {
    use eventsourcing::persistence::{PostgresConfig, PostgresRecorder, ProcessRecorder};
    let Some(url) = postgres_url("a_store_without_the_leases_table_opens_read_only") else {
        return Ok(());
    };
    let schema = unique_schema();
    let writer = PostgresRecorder::open(
        PostgresConfig::new(url.as_str())
            .schema(schema.clone())
            .drop_schema_on_drop_for_testing(),
    )?;
    let mut admin = postgres::Client::connect(&url, postgres::NoTls)?;
    // As an older release left it.
    admin.batch_execute(&format!("DROP TABLE \"{schema}\".leases"))?;
    let role = format!(
        "es_reader_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA \"{schema}\" TO {role}; \
         GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {role};"
    ))?;
    let reader_url = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let opened = PostgresRecorder::open(PostgresConfig::new(reader_url).schema(&schema)).map(drop);
    admin.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))?;
    opened.map_err(|e| format!("a read-only role opens the older store: {e}"))?;
    let leases = writer.leases().ok_or("leases")?;
    assert!(leases.list_leases("x/")?.is_empty(), "created on first use");
    let lease = leases.acquire_lease("x/partition/1/0", "a", Duration::from_secs(5))?;
    assert_eq!(lease.map(|l| l.epoch), Some(1));
    Ok(())
}
