//! Crash consistency under SIGKILL, on SQLite and PostgreSQL: a child process appends random
//! multi-stream batches and is killed at random points, cycle after cycle, against the same
//! database; after every kill the store must hold every acknowledged batch, no torn batch,
//! contiguous versions and increasing positions (and, on SQLite, pass `PRAGMA
//! integrity_check`). Two deliberately broken writers prove the check can fail: one that
//! commits a batch in two transactions (a torn batch), one that acknowledges before it
//! commits (a lost acknowledged batch).
//!
//! Short by default (a handful of cycles); `EVENTSOURCING_LONG=1` runs 200 cycles a backend.

use std::path::Path;
use std::sync::Arc;

use eventsourcing::persistence::{
    CassandraConfig, CassandraRecorder, PostgresConfig, PostgresRecorder, SqliteConfig,
    SqliteRecorder, Storage,
};
use eventsourcing_tests::crash::{
    kill_cycles, run_writer, scale, WriterMode, STORE_ENV, WRITER_ENV,
};
use eventsourcing_tests::support::TempDb;
use eventsourcing_tests::{postgres_url, unique_schema};

/// The child's entry point: does nothing unless the parent set `ES_CRASH_WRITER`.
#[test]
fn writer_entry() {
    if std::env::var_os(WRITER_ENV).is_none() {
        return;
    }
    let spec = std::env::var(STORE_ENV).expect("store spec");
    let store: Arc<dyn Storage> = if let Some(path) = spec.strip_prefix("sqlite:") {
        Arc::new(SqliteRecorder::open(SqliteConfig::new(path)).expect("open SQLite"))
    } else if let Some(schema) = spec.strip_prefix("postgres:") {
        let url = postgres_url("writer").expect("PostgreSQL URL");
        Arc::new(
            PostgresRecorder::open(PostgresConfig::new(url).schema(schema).pool_size(1))
                .expect("open PostgreSQL"),
        )
    } else if let Some(keyspace) = spec.strip_prefix("cassandra:") {
        Arc::new(CassandraRecorder::open(cassandra_config(keyspace)).expect("open Cassandra"))
    } else {
        panic!("unknown store spec {spec}");
    };
    run_writer(store.as_ref());
}

fn sqlite_integrity(path: &Path) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(format!("integrity_check: {verdict}"))
    }
}

fn sqlite_run(
    mode: WriterMode,
    cycles: usize,
) -> Result<eventsourcing_tests::crash::CrashReport, (usize, String)> {
    let file = TempDb::new("crash");
    let path = file.path().to_path_buf();
    let open = || -> Arc<dyn Storage> {
        Arc::new(SqliteRecorder::open(SqliteConfig::new(&path)).expect("reopen SQLite"))
    };
    let result = kill_cycles(
        &format!("sqlite:{}", path.display()),
        mode,
        cycles,
        &open,
        &|| sqlite_integrity(&path),
    );
    drop(file);
    result
}

struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.1));
        }
    }
}

fn postgres_run(
    url: &str,
    mode: WriterMode,
    cycles: usize,
) -> Result<eventsourcing_tests::crash::CrashReport, (usize, String)> {
    let schema = unique_schema();
    let _guard = DropSchema(url.to_owned(), schema.clone());
    let open = || -> Arc<dyn Storage> {
        Arc::new(
            PostgresRecorder::open(PostgresConfig::new(url).schema(schema.clone()).pool_size(1))
                .expect("reopen PostgreSQL"),
        )
    };
    kill_cycles(&format!("postgres:{schema}"), mode, cycles, &open, &|| {
        Ok(())
    })
}

/// The test server's configuration, in `keyspace`.
fn cassandra_config(keyspace: &str) -> CassandraConfig {
    let url = eventsourcing_tests::cassandra_url("crash writer").expect("Cassandra URL");
    let mut config = CassandraConfig::from_url(&url).expect("Cassandra URL");
    keyspace.clone_into(&mut config.keyspace);
    config
}

fn cassandra_run(
    mode: WriterMode,
    cycles: usize,
) -> Option<Result<eventsourcing_tests::crash::CrashReport, (usize, String)>> {
    eventsourcing_tests::cassandra_url("cassandra crash")?;
    let keyspace = format!(
        "es_crash_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    // Opened first and dropped last: creates the keyspace, and drops it at the end.
    let _owner =
        CassandraRecorder::open(cassandra_config(&keyspace).drop_keyspace_on_drop_for_testing())
            .expect("open Cassandra");
    let open = || -> Arc<dyn Storage> {
        Arc::new(CassandraRecorder::open(cassandra_config(&keyspace)).expect("reopen Cassandra"))
    };
    Some(kill_cycles(
        &format!("cassandra:{keyspace}"),
        mode,
        cycles,
        &open,
        &|| Ok(()),
    ))
}

/// Runs a broken writer until the check catches it; the check must catch it.
fn caught(
    run: impl Fn(usize) -> Result<eventsourcing_tests::crash::CrashReport, (usize, String)>,
    what: &str,
) {
    let attempts = 4;
    for _ in 0..attempts {
        match run(10) {
            Err((cycle, violation)) => {
                eprintln!("{what}: caught in cycle {cycle}: {violation}");
                return;
            }
            Ok(report) => eprintln!("{what}: not caught in {} cycles, again", report.cycles),
        }
    }
    panic!(
        "the crash check never caught the broken writer `{what}` in {attempts} runs of 10 cycles"
    );
}

#[test]
fn sqlite_survives_sigkill_cycles() {
    let cycles = scale(6, 200);
    let report = sqlite_run(WriterMode::Correct, cycles)
        .unwrap_or_else(|(cycle, v)| panic!("cycle {cycle}: {v}"));
    eprintln!("RELIABILITY sqlite crash: {report:?}");
    assert_eq!(report.cycles, cycles);
}

#[test]
fn sqlite_crash_check_catches_a_writer_that_commits_half_a_batch() {
    caught(
        |n| sqlite_run(WriterMode::HalfBatch, n),
        "sqlite half-batch",
    );
}

#[test]
fn sqlite_crash_check_catches_a_writer_that_acknowledges_before_committing() {
    caught(|n| sqlite_run(WriterMode::AckFirst, n), "sqlite ack-first");
}

#[test]
fn postgres_survives_sigkill_cycles() {
    let Some(url) = postgres_url("postgres_survives_sigkill_cycles") else {
        return;
    };
    let cycles = scale(6, 200);
    let report = postgres_run(&url, WriterMode::Correct, cycles)
        .unwrap_or_else(|(cycle, v)| panic!("cycle {cycle}: {v}"));
    eprintln!("RELIABILITY postgres crash: {report:?}");
    assert_eq!(report.cycles, cycles);
}

#[test]
fn postgres_crash_check_catches_a_writer_that_commits_half_a_batch() {
    let Some(url) = postgres_url("postgres_crash_check_catches_half_batch") else {
        return;
    };
    caught(
        |n| postgres_run(&url, WriterMode::HalfBatch, n),
        "postgres half-batch",
    );
}

#[test]
fn cassandra_survives_sigkill_cycles() {
    let cycles = scale(4, 100);
    let Some(result) = cassandra_run(WriterMode::Correct, cycles) else {
        return;
    };
    let report = result.unwrap_or_else(|(cycle, v)| panic!("cycle {cycle}: {v}"));
    eprintln!("RELIABILITY cassandra crash: {report:?}");
    assert_eq!(report.cycles, cycles);
}

#[test]
fn cassandra_crash_check_catches_a_writer_that_commits_half_a_batch() {
    if eventsourcing_tests::cassandra_url("cassandra crash (half batch)").is_none() {
        return;
    }
    caught(
        |n| cassandra_run(WriterMode::HalfBatch, n).expect("configured"),
        "cassandra half-batch",
    );
}
