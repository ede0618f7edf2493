//! SQLite to PostgreSQL and back through the binary: the same log on both.

use crate::support::{log_without_positions, run, SqliteStore};

/// A PostgreSQL URL with a schema of its own, dropped when the guard goes; `None` after a
/// loud skip.
struct Schema {
    url: String,
    base: String,
    name: String,
}

impl Schema {
    fn new(test: &str) -> Option<Self> {
        let base = match std::env::var("EVENTSOURCING_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                assert!(
                    std::env::var_os("EVENTSOURCING_REQUIRE_POSTGRES").is_none(),
                    "EVENTSOURCING_REQUIRE_POSTGRES is set but EVENTSOURCING_TEST_POSTGRES_URL is not"
                );
                eprintln!(
                    "\n!!!!!!!!!! SKIPPED PostgreSQL test `{test}`: set EVENTSOURCING_TEST_POSTGRES_URL to run it !!!!!!!!!!\n"
                );
                return None;
            }
        };
        let name = format!(
            "es_cli_{}_{}",
            std::process::id(),
            eventsourcing::Uuid::new_v4().simple()
        );
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{separator}schema={name}"),
            base,
            name,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
        if let Ok(config) = PostgresConfig::from_url(&self.base) {
            let _ = PostgresRecorder::open(
                config
                    .schema(self.name.clone())
                    .drop_schema_on_drop_for_testing(),
            );
        }
    }
}

#[test]
fn export_from_sqlite_import_into_postgres_gives_the_same_log() {
    let Some(pg) = Schema::new("export_from_sqlite_import_into_postgres_gives_the_same_log") else {
        return;
    };
    let source = SqliteStore::seeded();
    let file = source.file("export.jsonl");
    let file = file.to_str().expect("path");
    run(&["--url", &source.url, "export", file]).expect(0);
    run(&["--url", &pg.url, "import", file]).expect(0);
    let again = run(&["--url", &pg.url, "import", file]).expect(0);
    assert!(
        again.stdout.contains("imported 0 events (8 already there)"),
        "{}",
        again.stdout
    );
    assert_eq!(
        log_without_positions(&pg.url),
        log_without_positions(&source.url)
    );
    run(&["--url", &pg.url, "verify"]).expect(0);
    let stats = run(&["--url", &pg.url, "stats", "--json"]).expect(0);
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).expect("json");
    assert_eq!(
        (stats["events"].as_u64(), stats["streams"].as_u64()),
        (Some(8), Some(4))
    );
    let streams = run(&["--url", &pg.url, "streams"]).expect(0);
    assert_eq!(streams.stdout.lines().count(), 4);
    let fido = source.dogs[0].to_string();
    assert!(run(&["--url", &pg.url, "show", &fido])
        .expect(0)
        .stdout
        .contains("v3 "));

    // And back: PostgreSQL exported, imported into a new SQLite store.
    let back = pg_roundtrip(&pg.url, &source);
    assert_eq!(
        log_without_positions(&back),
        log_without_positions(&source.url)
    );
}

fn pg_roundtrip(pg_url: &str, source: &SqliteStore) -> String {
    let file = source.file("from-pg.jsonl");
    let file = file.to_str().expect("path");
    run(&["--url", pg_url, "export", file]).expect(0);
    let back = format!("sqlite://{}", source.file("back.db").display());
    run(&["--url", &back, "import", file]).expect(0);
    back
}

#[test]
fn copy_between_sqlite_and_postgres() {
    let Some(pg) = Schema::new("copy_between_sqlite_and_postgres") else {
        return;
    };
    let source = SqliteStore::seeded();
    run(&["copy", "--from", &source.url, "--to", &pg.url]).expect(0);
    crate::support::seed(&source.url);
    let more = run(&["copy", "--from", &source.url, "--to", &pg.url]).expect(0);
    assert!(more.stdout.contains("copied 8 events"), "{}", more.stdout);
    assert_eq!(
        log_without_positions(&pg.url),
        log_without_positions(&source.url)
    );
    let target = SqliteStore::empty();
    run(&["copy", "--from", &pg.url, "--to", &target.url]).expect(0);
    assert_eq!(
        log_without_positions(&target.url),
        log_without_positions(&source.url)
    );
    run(&["--url", &pg.url, "log", "--topic", "Dog.Registered"]).expect(0);
}

#[test]
fn verify_finds_a_gap_and_refuses_a_newer_schema_on_postgres() {
    let Some(pg) = Schema::new("verify_finds_a_gap_and_refuses_a_newer_schema_on_postgres") else {
        return;
    };
    let source = SqliteStore::seeded();
    run(&["copy", "--from", &source.url, "--to", &pg.url]).expect(0);
    run(&["--url", &pg.url, "verify"]).expect(0);
    let mut client = postgres::Client::connect(&pg.base, postgres::NoTls).expect("connect");
    let fido = source.dogs[0].to_string();
    client
        .execute(
            &format!(
                "DELETE FROM \"{}\".events WHERE stream_id = $1 AND version = 2",
                pg.name
            ),
            &[&fido],
        )
        .expect("plant");
    let failed = run(&["--url", &pg.url, "verify"]).expect(1);
    assert!(
        failed
            .stdout
            .contains(&format!("stream `{fido}` version 3 position "))
            && failed.stdout.contains("a gap"),
        "{}",
        failed.stdout
    );
    client
        .execute(
            &format!(
                "UPDATE \"{}\".eventsourcing_schema SET schema_version = 99",
                pg.name
            ),
            &[],
        )
        .expect("plant");
    let newer = run(&["--url", &pg.url, "stats"]).expect(6);
    assert!(
        newer.one_error_line().contains("schema version 99"),
        "{}",
        newer.stderr
    );
    client
        .execute(
            &format!(
                "UPDATE \"{}\".eventsourcing_schema SET schema_version = 2",
                pg.name
            ),
            &[],
        )
        .expect("restore, so that the schema can be dropped");
}
