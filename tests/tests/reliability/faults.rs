//! Storage faults: a full disk, a read-only database file, a locked database, a PostgreSQL
//! connection killed in the middle of an append transaction, and a PostgreSQL server restart
//! (on a throwaway cluster, never the shared server). Each surfaces as a typed error, writes
//! nothing, and the application works again once the fault is gone.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use eventsourcing::persistence::{
    ApplicationRecorder, PersistenceError, PostgresConfig, PostgresRecorder, SqliteConfig,
    SqliteRecorder, Storage,
};
use eventsourcing::prelude::*;
use eventsourcing_examples::dog_school::{Dog, DogCommands};
use eventsourcing_tests::support::{PgCluster, TempDb};
use eventsourcing_tests::{postgres_url, unique_schema};

fn app_over(storage: Arc<dyn Storage>) -> Application {
    Application::builder()
        .storage(storage)
        .build()
        .expect("application")
}

fn sqlite(path: &Path, config: impl FnOnce(SqliteConfig) -> SqliteConfig) -> Arc<dyn Storage> {
    Arc::new(SqliteRecorder::open(config(SqliteConfig::new(path))).expect("open SQLite"))
}

fn persistence(error: ApplicationError) -> PersistenceError {
    match error {
        ApplicationError::Persistence(e) => e,
        other => panic!("expected a persistence error, got {other:?}"),
    }
}

fn integrity(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("raw");
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(verdict, "ok");
}

#[test]
fn sqlite_disk_full_is_typed_writes_nothing_and_recovers() {
    let file = TempDb::new("full");
    let app = app_over(sqlite(file.path(), |c| c.max_page_count_for_testing(40)));
    let mut saved = 0;
    let error = loop {
        let mut dog = Dog::register("Fido".into());
        for i in 0..8 {
            dog.add_trick(format!("{i}{}", "x".repeat(2000)));
        }
        let before = app.event_store().recorder().max_position().expect("max");
        match app.save(&mut dog) {
            Ok(_) => saved += 1,
            Err(error) => {
                assert_eq!(
                    app.event_store().recorder().max_position().expect("max"),
                    before,
                    "a failed save wrote something"
                );
                assert_eq!(dog.pending_events().len(), 9, "pending events kept");
                assert!(
                    !app.repository::<Dog>().contains(dog.id()).expect("read"),
                    "nothing of the failed batch is stored"
                );
                break (error, dog);
            }
        }
        assert!(saved < 1000, "the size limit never bit");
    };
    let (error, mut dog) = error;
    let error = persistence(error);
    assert!(
        matches!(error, PersistenceError::StorageFull { .. }),
        "{error:?}"
    );
    drop(app);
    integrity(file.path());
    // The fault goes away (more room): the same aggregate saves.
    let app = app_over(sqlite(file.path(), |c| c));
    app.save(&mut dog)
        .expect("save after the disk has room again");
    assert_eq!(app.get::<Dog>(dog.id()).expect("get").version(), 9);
    eprintln!("RELIABILITY sqlite disk full after {saved} saves: StorageFull, nothing written");
}

/// Makes a file immutable (root ignores permission bits) or read-only (other users).
fn set_read_only(path: &Path, read_only: bool) {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        let flag = if read_only { "+i" } else { "-i" };
        let status = Command::new("chattr").arg(flag).arg(path).status();
        assert!(status.is_ok_and(|s| s.success()), "chattr {flag} failed");
    } else {
        let mut perms = std::fs::metadata(path).expect("metadata").permissions();
        perms.set_readonly(read_only);
        std::fs::set_permissions(path, perms).expect("chmod");
    }
}

#[test]
fn sqlite_read_only_file_is_typed_writes_nothing_and_recovers() {
    let file = TempDb::new("readonly");
    let mut fido = Dog::register("Fido".into());
    {
        let app = app_over(sqlite(file.path(), |c| c));
        app.save(&mut fido).expect("save");
    }
    set_read_only(file.path(), true);
    let mut rex = Dog::register("Rex".into());
    let outcome = SqliteRecorder::open(SqliteConfig::new(file.path()));
    let error = match outcome {
        // Opening may already fail (WAL needs to write), with a typed error...
        Err(error) => error,
        // ...or the save does.
        Ok(recorder) => {
            let app = app_over(Arc::new(recorder));
            persistence(app.save(&mut rex).expect_err("read-only"))
        }
    };
    set_read_only(file.path(), false);
    assert!(
        matches!(
            error,
            PersistenceError::ReadOnly { .. } | PersistenceError::Unavailable { .. }
        ),
        "{error:?}"
    );
    let app = app_over(sqlite(file.path(), |c| c));
    assert!(!app.repository::<Dog>().contains(rex.id()).expect("read"));
    app.save(&mut rex).expect("writable again");
    assert_eq!(app.event_store().recorder().max_position().expect("max"), 2);
    integrity(file.path());
}

#[test]
fn sqlite_locked_database_is_busy_writes_nothing_and_recovers() {
    let file = TempDb::new("busy");
    let app = app_over(sqlite(file.path(), |c| {
        c.busy_timeout(Duration::from_millis(50))
    }));
    let mut fido = Dog::register("Fido".into());
    app.save(&mut fido).expect("save");
    let locker = rusqlite::Connection::open(file.path()).expect("raw");
    locker.execute_batch("BEGIN IMMEDIATE").expect("lock");
    fido.add_trick("sit".into());
    let error = persistence(app.save(&mut fido).expect_err("locked"));
    assert!(matches!(error, PersistenceError::Busy { .. }), "{error:?}");
    assert!(error.is_transient());
    locker.execute_batch("ROLLBACK").expect("unlock");
    assert_eq!(app.get::<Dog>(fido.id()).expect("get").version(), 1);
    app.save(&mut fido).expect("unlocked");
    assert_eq!(app.get::<Dog>(fido.id()).expect("get").version(), 2);
}

#[test]
fn postgres_connection_killed_mid_transaction_is_typed_and_writes_nothing() {
    let Some(url) = postgres_url("postgres_connection_killed_mid_transaction") else {
        return;
    };
    let schema = unique_schema();
    let name = format!("victim_{}", &schema[schema.len() - 8..]);
    let checker: Arc<dyn Storage> = Arc::new(
        PostgresRecorder::open(
            PostgresConfig::new(url.clone())
                .schema(schema.clone())
                .drop_schema_on_drop_for_testing(),
        )
        .expect("open"),
    );
    let victim: Arc<dyn Storage> = Arc::new(
        PostgresRecorder::open(
            PostgresConfig::new(url.clone())
                .schema(schema.clone())
                .application_name(name.clone())
                .hold_in_transaction_for_testing(Duration::from_millis(1500)),
        )
        .expect("open"),
    );
    let app = app_over(victim);
    let mut fido = Dog::register("Fido".into());
    fido.add_trick("sit".into());
    let killer = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            let killed: i64 = client
                .query_one(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND state = 'idle in transaction') t",
                    &[&name],
                )
                .expect("terminate")
                .get(0);
            if killed > 0 {
                return killed;
            }
        }
        0
    });
    let error = app.save(&mut fido).expect_err("killed mid-transaction");
    assert!(killer.join().expect("killer") > 0, "no backend was killed");
    let error = persistence(error);
    assert!(
        matches!(
            error,
            PersistenceError::Unavailable { .. } | PersistenceError::Backend { .. }
        ),
        "{error:?}"
    );
    assert_eq!(checker.max_position().expect("max"), 0, "nothing written");
    assert_eq!(fido.pending_events().len(), 2);
    // The pool replaces the dead connection: the same application works again.
    app.save(&mut fido).expect("save after the kill");
    // (The aborted transaction may have used up positions: a hole, never a reordering.)
    let log = checker
        .select_notifications(&eventsourcing::persistence::NotificationQuery::new(1, 100))
        .expect("log");
    assert_eq!(log.len(), 2, "exactly the retried batch is stored");
    assert_eq!(app.get::<Dog>(fido.id()).expect("get").version(), 2);
    eprintln!("RELIABILITY postgres mid-transaction kill: {error}");
}

#[test]
fn postgres_server_restart_is_typed_and_the_application_recovers() {
    let Some(cluster) = PgCluster::start("postgres_server_restart", &[]) else {
        return;
    };
    let storage: Arc<dyn Storage> = Arc::new(
        PostgresRecorder::open(
            PostgresConfig::new(cluster.url()).connect_timeout(Duration::from_secs(2)),
        )
        .expect("open"),
    );
    let app = app_over(storage);
    let mut fido = Dog::register("Fido".into());
    app.save(&mut fido).expect("save");
    assert!(cluster.ctl("stop"), "stop the throwaway server");
    fido.add_trick("sit".into());
    let error = persistence(app.save(&mut fido).expect_err("server down"));
    assert!(
        matches!(
            error,
            PersistenceError::Unavailable { .. } | PersistenceError::Backend { .. }
        ),
        "{error:?}"
    );
    assert!(cluster.ctl("start"), "start the throwaway server again");
    let mut recovered = false;
    for _ in 0..20 {
        match app.save(&mut fido) {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    assert!(
        recovered,
        "the application did not recover after the restart"
    );
    let copy = app.get::<Dog>(fido.id()).expect("get");
    assert_eq!(copy.version(), 2);
    eprintln!("RELIABILITY postgres restart: {error}");
}
