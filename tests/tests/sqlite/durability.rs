//! What the SQLite recorder promises beyond the shared conformance suite: state survives
//! closing and reopening the file, positions are never reused, the schema is versioned, the
//! durability pragmas are applied, corrupt rows are typed errors, several connections (as
//! several processes would) serialise their writers; and proofs that the concurrency checks of
//! the conformance suite catch a recorder without optimistic concurrency or a follower with a
//! wrong cursor.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use eventsourcing::persistence::sqlite::SCHEMA_VERSION;
use eventsourcing::persistence::{
    AdminRecorder, AggregateRecorder, ApplicationRecorder, EventQuery, Layered, NotificationQuery,
    PersistenceError, ProcessRecorder, RecorderLayer, SnapshotRecorder, SqliteConfig,
    SqliteRecorder, Storage, StoredEvent, StoredSnapshot, Synchronous, Tracking,
};
use eventsourcing::{Application, ApplicationError, Timestamp};
use eventsourcing_tests::conformance::{self, append};
use eventsourcing_tests::support::{Guarded, TempDb};
use uuid::Uuid;

fn open(path: &Path) -> SqliteRecorder {
    SqliteRecorder::open(SqliteConfig::new(path)).expect("open")
}

fn store(recorder: SqliteRecorder, file: TempDb) -> Arc<dyn Storage> {
    Guarded::store(Arc::new(recorder), file)
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

fn user_version(path: &Path) -> i64 {
    raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

/// Runs a conformance check and reports whether it passed (a failed assertion is a panic).
fn passes(check: fn(&Arc<dyn Storage>), store: &Arc<dyn Storage>) -> bool {
    catch_unwind(AssertUnwindSafe(|| check(store))).is_ok()
}

#[test]
fn state_survives_closing_and_reopening() {
    let file = TempDb::new("sqlite-reopen");
    let stream = Uuid::now_v7().to_string();
    let upstream = "upstream";
    let (written, positions) = {
        let recorder = open(file.path());
        let batch = append(&stream, 0, 3);
        let positions = recorder
            .append(
                std::slice::from_ref(&batch),
                Some(&Tracking::new(upstream, 42)),
            )
            .expect("append");
        recorder
            .put_snapshot(&StoredSnapshot {
                stream_id: stream.clone(),
                version: 3,
                topic: "Test".into(),
                schema_version: 1,
                state: b"{}".to_vec(),
                created_on: Timestamp::from_micros(1),
                modified_on: Timestamp::from_micros(3),
            })
            .expect("snapshot");
        (batch.events, positions)
    };
    let recorder = open(file.path());
    let read = recorder
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(read.len(), 3);
    for ((read, written), position) in read.iter().zip(&written).zip(&positions) {
        assert_eq!(
            StoredEvent {
                position: Some(*position),
                ..written.clone()
            },
            *read
        );
    }
    assert_eq!(recorder.max_position().expect("max"), positions[2]);
    assert_eq!(
        recorder.max_tracking_position(upstream).expect("tracking"),
        Some(42)
    );
    assert_eq!(
        recorder
            .latest_snapshot(&stream, None)
            .expect("snapshot")
            .map(|s| s.version),
        Some(3)
    );
    let error = recorder
        .append(&[append(&stream, 2, 1)], None)
        .expect_err("the version survives too");
    assert!(error.is_conflict(), "{error:?}");
    let more = recorder
        .append(&[append(&stream, 3, 1)], None)
        .expect("append");
    assert!(more[0] > positions[2]);
}

#[test]
fn positions_are_never_reused_after_deleting_the_last_rows() {
    let file = TempDb::new("sqlite-autoincrement");
    let recorder = open(file.path());
    let first = recorder.append(&[append("a", 0, 3)], None).expect("append");
    assert_eq!(recorder.delete_stream("a").expect("delete"), 3);
    assert_eq!(recorder.max_position().expect("max"), 0, "the log is empty");
    let second = recorder.append(&[append("b", 0, 1)], None).expect("append");
    assert!(
        second[0] > first[2],
        "position {} reused after {}",
        second[0],
        first[2]
    );
    recorder.delete_stream("b").expect("delete");
    drop(recorder);
    let recorder = open(file.path());
    let third = recorder.append(&[append("c", 0, 1)], None).expect("append");
    assert!(third[0] > second[0], "not reused across a reopen either");
}

#[test]
fn a_database_with_a_newer_schema_is_refused_and_left_untouched() {
    let file = TempDb::new("sqlite-future");
    raw(file.path())
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("set version");
    let error = SqliteRecorder::open(SqliteConfig::new(file.path())).expect_err("newer schema");
    match error {
        PersistenceError::SchemaVersion {
            found, supported, ..
        } => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
    assert_eq!(user_version(file.path()), SCHEMA_VERSION + 1);
    let mode: String = raw(file.path())
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete", "not even switched to WAL");
}

#[test]
fn a_new_database_records_its_schema_version() {
    let file = TempDb::new("sqlite-version");
    let recorder = open(file.path());
    assert_eq!(recorder.schema_version().expect("version"), SCHEMA_VERSION);
    drop(recorder);
    assert_eq!(user_version(file.path()), SCHEMA_VERSION);
    open(file.path());
    assert_eq!(
        user_version(file.path()),
        SCHEMA_VERSION,
        "reopening keeps it"
    );
}

#[test]
fn wal_and_the_synchronous_setting_are_applied() {
    let file = TempDb::new("sqlite-pragmas");
    let recorder = open(file.path());
    assert_eq!(recorder.journal_mode().expect("mode"), "wal");
    assert_eq!(
        recorder.synchronous().expect("synchronous"),
        Some(Synchronous::Full),
        "FULL is the default"
    );
    drop(recorder);
    let recorder =
        SqliteRecorder::open(SqliteConfig::new(file.path()).synchronous(Synchronous::Normal))
            .expect("open");
    assert_eq!(
        recorder.synchronous().expect("synchronous"),
        Some(Synchronous::Normal)
    );
    assert_eq!(
        SqliteConfig::default().synchronous_setting(),
        Synchronous::Full
    );
    let memory = SqliteRecorder::in_memory().expect("memory");
    assert_eq!(memory.journal_mode().expect("mode"), "memory");
}

#[test]
fn a_missing_directory_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("es-missing-{}", Uuid::now_v7()));
    let path = dir.join("events.db");
    let error = SqliteRecorder::open(SqliteConfig::new(&path)).expect_err("no directory");
    assert!(
        matches!(error, PersistenceError::Unavailable { .. }),
        "{error:?}"
    );
    let error =
        Application::open(&format!("sqlite://{}", path.display())).expect_err("no directory");
    assert!(
        matches!(
            error,
            ApplicationError::Persistence(PersistenceError::Unavailable { .. })
        ),
        "{error:?}"
    );
    assert!(!dir.exists());
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let file = TempDb::new("sqlite-garbage");
    std::fs::write(file.path(), vec![0x5a_u8; 8192]).expect("write garbage");
    let error = SqliteRecorder::open(SqliteConfig::new(file.path())).expect_err("garbage");
    assert!(
        matches!(error, PersistenceError::Corrupt { .. }),
        "{error:?}"
    );
}

#[test]
fn applications_open_sqlite_urls() {
    let file = TempDb::new("sqlite-app");
    let url = format!("sqlite://{}", file.path().display());
    let app = Application::open(&url).expect("open app");
    let positions = app
        .event_store()
        .recorder()
        .append(&[append("s", 0, 2)], None)
        .expect("append");
    drop(app);
    let app = Application::open(&url).expect("reopen app");
    assert_eq!(
        app.event_store().recorder().max_position().expect("max"),
        positions[1]
    );
}

#[test]
fn table_prefixes_keep_applications_apart_in_one_file() {
    let file = TempDb::new("sqlite-prefix");
    let orders = SqliteRecorder::open(SqliteConfig::new(file.path()).table_prefix("orders_"))
        .expect("orders");
    let billing = SqliteRecorder::open(SqliteConfig::new(file.path()).table_prefix("billing_"))
        .expect("billing");
    orders.append(&[append("x", 0, 2)], None).expect("append");
    billing
        .append(&[append("x", 0, 1)], None)
        .expect("same stream id, other tables");
    assert_eq!(orders.max_position().expect("max"), 2);
    assert_eq!(billing.max_position().expect("max"), 1);
    for bad in ["1abc", "a-b", "x; DROP TABLE y", "ü"] {
        let error = SqliteRecorder::open(SqliteConfig::new(file.path()).table_prefix(bad))
            .expect_err("bad prefix");
        assert!(
            matches!(error, PersistenceError::Config(_)),
            "{bad}: {error:?}"
        );
    }
}

/// Rows written behind the recorder's back that break its invariants are `Corrupt` errors
/// naming the row's position, never panics.
#[test]
fn corrupt_rows_are_typed_errors_naming_the_row() {
    let file = TempDb::new("sqlite-corrupt");
    let recorder = open(file.path());
    let conn = raw(file.path());
    let insert = |stream: &str, version: i64, event_id: &[u8], metadata: Option<&str>| {
        conn.execute(
            "INSERT INTO events (stream_id, version, event_id, topic, schema_version, \
             timestamp, payload, metadata) VALUES (?1, ?2, ?3, 'T', 1, 0, x'00', ?4)",
            rusqlite::params![stream, version, event_id, metadata],
        )
        .expect("raw insert");
        conn.last_insert_rowid()
    };
    let good_id = Uuid::now_v7();
    let negative_id = Uuid::now_v7();
    let negative = insert("negative", -1, negative_id.as_bytes(), None);
    let bad_id = insert("bad-id", 1, b"not a uuid", None);
    let bad_json = insert("bad-json", 1, Uuid::now_v7().as_bytes(), Some("{not json"));
    insert("ok", 1, good_id.as_bytes(), None);
    let expect_corrupt =
        |result: Result<Vec<StoredEvent>, PersistenceError>, position: i64| match result {
            Err(PersistenceError::Corrupt { detail }) => {
                assert!(detail.contains(&format!("position {position}")), "{detail}")
            }
            other => panic!("row {position}: expected Corrupt, got {other:?}"),
        };
    // A negative version is outside every version range, so read it by event id.
    expect_corrupt(
        recorder
            .event_by_id(negative_id)
            .map(|e| e.into_iter().collect()),
        negative,
    );
    expect_corrupt(recorder.select_events("bad-id", &EventQuery::all()), bad_id);
    expect_corrupt(
        recorder.select_events("bad-json", &EventQuery::all()),
        bad_json,
    );
    let error = recorder
        .select_notifications(&NotificationQuery::new(1, 10))
        .expect_err("the log holds corrupt rows");
    assert!(
        matches!(error, PersistenceError::Corrupt { .. }),
        "{error:?}"
    );
    assert!(recorder.event_by_id(good_id).expect("good row").is_some());
}

/// Two recorders on one file stand for two processes: `BEGIN IMMEDIATE` and the busy timeout
/// serialise their writers, and exactly one writer wins each round.
#[test]
fn two_connections_on_one_file_serialise_writers() {
    const ROUNDS: u64 = 10;
    let file = TempDb::new("sqlite-two-processes");
    let recorders = [Arc::new(open(file.path())), Arc::new(open(file.path()))];
    let stream = Uuid::now_v7().to_string();
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let recorder = Arc::clone(&recorders[i % 2]);
                let (stream, barrier) = (stream.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    recorder.append(&[append(&stream, round, 1)], None)
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok() || r.as_ref().is_err_and(PersistenceError::is_conflict)));
    }
    let read = recorders[1]
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(read.len(), usize::try_from(ROUNDS).expect("small"));
}

/// Creates the version-1 schema by hand but without `UNIQUE (stream_id, version)`, so that the
/// expected-version check is the only thing serialising writers.
fn schema_without_unique_versions(path: &Path) {
    raw(path)
        .execute_batch(&format!(
            "CREATE TABLE events (
                position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL,
                version INTEGER NOT NULL, event_id BLOB NOT NULL UNIQUE, topic TEXT NOT NULL,
                schema_version INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                payload BLOB NOT NULL, metadata TEXT);
             PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .expect("hand-made schema");
}

/// The proof that `concurrent_writers_one_stream` catches a recorder without optimistic
/// concurrency: with the expected-version check skipped and no unique index to fall back on,
/// every writer of a round wins and the check fails.
#[test]
fn proof_concurrent_writers_one_stream_catches_a_missing_version_check() {
    let file = TempDb::new("sqlite-broken-check");
    schema_without_unique_versions(file.path());
    let broken =
        SqliteRecorder::open(SqliteConfig::new(file.path()).skip_version_check_for_tests())
            .expect("open");
    let broken = store(broken, file);
    assert!(
        !passes(conformance::concurrent_writers_one_stream, &broken),
        "the check must fail on a recorder that skips the expected-version check"
    );
}

/// The control for the proof above: on the same hand-made schema (no unique index), the
/// recorder's own check under `BEGIN IMMEDIATE` is enough.
#[test]
fn the_version_check_alone_serialises_writers() {
    let file = TempDb::new("sqlite-check-alone");
    schema_without_unique_versions(file.path());
    let recorder = store(open(file.path()), file);
    conformance::concurrent_writers_one_stream(&recorder);
    conformance::conflict_writes_nothing(&recorder);
}

/// With the real schema, skipping the check is still caught: `UNIQUE (stream_id, version)`
/// turns a lost race into a conflict (the second line of defence), but an expected version
/// above the stream's is no longer refused, which `conflict_writes_nothing` detects.
#[test]
fn proof_the_unique_index_backs_the_check_but_does_not_replace_it() {
    let file = TempDb::new("sqlite-unique-backstop");
    let recorder =
        SqliteRecorder::open(SqliteConfig::new(file.path()).skip_version_check_for_tests())
            .expect("open");
    let recorder = store(recorder, file);
    conformance::concurrent_writers_one_stream(&recorder);
    assert!(
        !passes(conformance::conflict_writes_nothing, &recorder),
        "an expected version beyond the stream must be a conflict"
    );
}

/// A follower bug: treating the cursor as exclusive (reading after `from_position` instead of
/// from it) skips one event a page.
struct ExclusiveCursor(Arc<dyn Storage>);

impl RecorderLayer for ExclusiveCursor {
    fn inner(&self) -> &dyn Storage {
        &*self.0
    }
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let mut wrong = query.clone();
        wrong.from_position += 1;
        self.0.select_notifications_into(&wrong, into)
    }
}

/// The proof that `concurrent_writers_gap_free` catches a follower that skips events.
#[test]
fn proof_concurrent_writers_gap_free_catches_a_wrong_cursor() {
    let file = TempDb::new("sqlite-broken-cursor");
    let recorder = store(open(file.path()), file);
    let broken: Arc<dyn Storage> = Arc::new(Layered(ExclusiveCursor(Arc::clone(&recorder))));
    assert!(
        !passes(conformance::concurrent_writers_gap_free, &broken),
        "the check must fail on a follower that skips events"
    );
    conformance::concurrent_writers_gap_free(&recorder);
}
