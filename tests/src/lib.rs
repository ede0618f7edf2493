//! Shared test support of the project's own tests: helpers for finding the PostgreSQL and
//! Cassandra servers used in CI, fresh stores of each backend, throwaway clusters and the
//! crash harness. The conformance suite, the evolution scenarios and the model test are the
//! public kit `eventsourcing-testkit`, re-exported here under their old paths.

pub mod competing;
pub mod crash;
pub mod support;
pub mod wakeups;

pub use eventsourcing_testkit::{conformance, domain_model, evolution, model};

/// The examples of `docs/EVOLUTION.md`, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/EVOLUTION.md")]
pub struct EvolutionGuide;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_ENV: &str = "EVENTSOURCING_TEST_POSTGRES_URL";

/// When set (as `.ci/run` does), a missing PostgreSQL URL fails the tests instead of skipping.
pub const REQUIRE_POSTGRES_ENV: &str = "EVENTSOURCING_REQUIRE_POSTGRES";

/// The PostgreSQL URL for tests, or `None` after printing a loud skip notice.
///
/// # Panics
/// When [`REQUIRE_POSTGRES_ENV`] is set and the URL is not: CI must never skip PostgreSQL.
#[must_use]
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os(REQUIRE_POSTGRES_ENV).is_none(),
                "{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_URL_ENV} is not: PostgreSQL tests must run"
            );
            eprintln!(
                "\n!!!!!!!!!! SKIPPED PostgreSQL test `{test}`: set {POSTGRES_URL_ENV} \
                 (e.g. postgres://postgres@127.0.0.1:5432/test) to run it !!!!!!!!!!\n"
            );
            None
        }
    }
}

/// The environment variable naming the Cassandra server for tests
/// (`cassandra://127.0.0.1:9042/KEYSPACE`; each test store gets a keyspace of its own).
pub const CASSANDRA_URL_ENV: &str = "EVENTSOURCING_TEST_CASSANDRA_URL";

/// When set (as `.ci/run` does), a missing Cassandra URL fails the tests instead of skipping.
pub const REQUIRE_CASSANDRA_ENV: &str = "EVENTSOURCING_REQUIRE_CASSANDRA";

/// The Cassandra URL for tests, or `None` after printing a loud skip notice.
///
/// # Panics
/// When [`REQUIRE_CASSANDRA_ENV`] is set and the URL is not: CI must never skip Cassandra.
#[must_use]
pub fn cassandra_url(test: &str) -> Option<String> {
    match std::env::var(CASSANDRA_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os(REQUIRE_CASSANDRA_ENV).is_none(),
                "{REQUIRE_CASSANDRA_ENV} is set but {CASSANDRA_URL_ENV} is not: Cassandra tests must run"
            );
            eprintln!(
                "\n!!!!!!!!!! SKIPPED Cassandra test `{test}`: set {CASSANDRA_URL_ENV} \
                 (e.g. cassandra://127.0.0.1:9042/eventsourcing_test; scripts/services.sh start cassandra) \
                 to run it !!!!!!!!!!\n"
            );
            None
        }
    }
}

/// A fresh Cassandra store in a keyspace of its own (dropped with the store), or `None`
/// after a loud skip when no server is configured. `bucket_size` small values make the
/// bucket boundaries easy to cross in tests.
///
/// # Panics
/// When the server is configured but cannot be opened.
#[must_use]
pub fn fresh_cassandra_with(
    test: &str,
    bucket_size: u64,
) -> Option<std::sync::Arc<dyn eventsourcing::persistence::Storage>> {
    use eventsourcing::persistence::{CassandraConfig, CassandraRecorder};
    let url = cassandra_url(test)?;
    let mut config = CassandraConfig::from_url(&url).expect("a valid Cassandra URL");
    config.keyspace = format!("{}_{}", config.keyspace, unique_suffix());
    let config = config
        .bucket_size(bucket_size)
        .drop_keyspace_on_drop_for_testing();
    Some(std::sync::Arc::new(
        CassandraRecorder::open(config).expect("open the Cassandra recorder"),
    ))
}

/// [`fresh_cassandra_with`] the default bucket size.
#[must_use]
pub fn fresh_cassandra(
    test: &str,
) -> Option<std::sync::Arc<dyn eventsourcing::persistence::Storage>> {
    fresh_cassandra_with(
        test,
        eventsourcing::persistence::CassandraConfig::DEFAULT_BUCKET_SIZE,
    )
}

/// `<pid>_<n>_<8 hex>`: short enough for Cassandra's 48-character keyspace names.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        &uuid[..8]
    )
}

/// A schema name that no other test (in this or a concurrent run) uses:
/// `es_test_<pid>_<n>_<uuid-simple>`.
#[must_use]
pub fn unique_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "es_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4().simple()
    )
}

/// A fresh PostgreSQL store in its own schema (dropped with the store), or `None` after a
/// loud skip when no server is configured.
///
/// # Panics
/// When the server is configured but cannot be opened.
#[must_use]
pub fn fresh_postgres(
    test: &str,
) -> Option<std::sync::Arc<dyn eventsourcing::persistence::Storage>> {
    use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
    let url = postgres_url(test)?;
    let config = PostgresConfig::new(url)
        .schema(unique_schema())
        .drop_schema_on_drop_for_testing();
    Some(std::sync::Arc::new(
        PostgresRecorder::open(config).expect("open the PostgreSQL recorder"),
    ))
}

/// A fresh SQLite store in a temporary file, removed with the store.
///
/// # Panics
/// When the file cannot be opened.
#[must_use]
pub fn fresh_sqlite(label: &str) -> std::sync::Arc<dyn eventsourcing::persistence::Storage> {
    use eventsourcing::persistence::{SqliteConfig, SqliteRecorder};
    let file = support::TempDb::new(label);
    let recorder = SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open SQLite file");
    support::Guarded::store(std::sync::Arc::new(recorder), file)
}

/// Makes a fresh store of one backend.
pub type MakeStore = Box<dyn Fn() -> std::sync::Arc<dyn eventsourcing::persistence::Storage>>;

/// The backends to run a scenario on, each with a name and a constructor of fresh stores:
/// memory, a SQLite file, and PostgreSQL when it is configured (a loud skip otherwise).
#[must_use]
pub fn backends(test: &str) -> Vec<(&'static str, MakeStore)> {
    let label = test.to_owned();
    let mut backends: Vec<(&'static str, MakeStore)> = vec![
        (
            "memory",
            Box::new(|| std::sync::Arc::new(eventsourcing::persistence::MemoryRecorder::new())),
        ),
        ("sqlite", Box::new(move || fresh_sqlite(&label))),
    ];
    if fresh_postgres(test).is_some() {
        let name = test.to_owned();
        backends.push((
            "postgres",
            Box::new(move || fresh_postgres(&name).expect("PostgreSQL was reachable")),
        ));
    }
    backends
}
