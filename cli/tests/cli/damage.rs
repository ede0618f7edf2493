//! `verify` passes on a clean store and finds each kind of planted damage, naming the stream,
//! version and position.

use crate::support::{run, run_bin, SqliteStore, DOGS};

/// Runs `verify` (with the dog types) and returns its stdout, expecting problems.
fn problems(store: &SqliteStore, extra: &[&str]) -> String {
    let mut args = vec!["--url", store.url.as_str(), "verify"];
    args.extend_from_slice(extra);
    let run = run_bin(DOGS, &args).expect(1);
    assert!(run.stdout.contains("FAILED"), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    run.stdout
}

#[test]
fn a_clean_store_passes() {
    let store = SqliteStore::seeded();
    let url = store.url.as_str();
    let plain = run(&["--url", url, "verify"]).expect(0);
    assert!(
        plain
            .stdout
            .starts_with("ok: 8 events in 4 streams, 1 snapshots"),
        "{}",
        plain.stdout
    );
    run_bin(DOGS, &["--url", url, "verify"]).expect(0);
    run_bin(
        DOGS,
        &["--url", url, "verify", "--upstream", &format!("self={url}")],
    )
    .expect(0);
}

#[test]
fn a_gap_in_versions() {
    let store = SqliteStore::seeded();
    let fido = store.dogs[0].to_string();
    store
        .sql()
        .execute(
            "DELETE FROM events WHERE stream_id = ?1 AND version = 2",
            [&fido],
        )
        .expect("plant");
    let out = problems(&store, &[]);
    let position: i64 = store
        .sql()
        .query_row(
            "SELECT position FROM events WHERE stream_id = ?1 AND version = 3",
            [&fido],
            |r| r.get(0),
        )
        .expect("position");
    assert!(
        out.contains(&format!(
            "stream `{fido}` version 3 position {position}: a gap: versions 2 to 2 are missing"
        )),
        "{out}"
    );
}

#[test]
fn a_corrupt_payload() {
    let store = SqliteStore::seeded();
    store
        .sql()
        .execute(
            "UPDATE events SET payload = CAST('{\"name\":' AS BLOB) WHERE position = 1",
            [],
        )
        .expect("plant");
    let fido = store.dogs[0].to_string();
    let out = problems(&store, &[]);
    assert!(
        out.contains(&format!(
            "stream `{fido}` version 1 position 1: the payload is not valid JSON"
        )),
        "{out}"
    );
    // Valid JSON of the wrong shape is found by the typed binary only.
    let store = SqliteStore::seeded();
    store
        .sql()
        .execute(
            "UPDATE events SET payload = CAST('{\"name\":5}' AS BLOB) WHERE position = 1",
            [],
        )
        .expect("plant");
    let out = problems(&store, &[]);
    assert!(
        out.contains("position 1: the event does not decode"),
        "{out}"
    );
    run(&["--url", &store.url, "verify"]).expect(0);
}

#[test]
fn an_unknown_topic() {
    let store = SqliteStore::seeded();
    store
        .sql()
        .execute(
            "UPDATE events SET topic = 'Cat.Meowed' WHERE position = 2",
            [],
        )
        .expect("plant");
    let fido = store.dogs[0].to_string();
    let out = problems(&store, &[]);
    assert!(
        out.contains(&format!(
            "stream `{fido}` version 2 position 2: unknown topic `Cat.Meowed`"
        )),
        "{out}"
    );
    // The plain tool knows no types: there an unknown topic is no problem.
    run(&["--url", &store.url, "verify"]).expect(0);
}

#[test]
fn a_snapshot_ahead_of_its_events_or_without_any() {
    let store = SqliteStore::seeded();
    let rex = store.dogs[1].to_string();
    store
        .sql()
        .execute(
            "INSERT INTO snapshots VALUES (?1, 9, 'Dog', 1, CAST('{}' AS BLOB), 0, 0), ('ghost', 1, 'Dog', 1, CAST('{}' AS BLOB), 0, 0)",
            [&rex],
        )
        .expect("plant");
    let out = problems(&store, &[]);
    assert!(
        out.contains(&format!(
            "snapshot of stream `{rex}` at version 9: ahead of the stream's last event (version 2)"
        )),
        "{out}"
    );
    assert!(
        out.contains("snapshot of stream `ghost` at version 1: the stream has no events"),
        "{out}"
    );
}

#[test]
fn a_tracking_record_ahead_of_its_upstream() {
    let store = SqliteStore::seeded();
    let upstream = SqliteStore::seeded();
    store
        .sql()
        .execute(
            "INSERT INTO tracking VALUES ('orders', 8), ('orders', 1000)",
            [],
        )
        .expect("plant");
    let out = problems(&store, &["--upstream", &format!("orders={}", upstream.url)]);
    assert!(
        out.contains("tracking record of upstream `orders` at position 1000: ahead of that log, which ends at position 8"),
        "{out}"
    );
    // Without the upstream's URL it is listed as not checked, not a problem.
    let unchecked = run(&["--url", &store.url, "verify"]).expect(0);
    assert!(
        unchecked
            .stdout
            .contains("upstream `orders` (up to position 1000) not checked"),
        "{}",
        unchecked.stdout
    );
}

#[test]
fn versions_out_of_position_order() {
    let store = SqliteStore::seeded();
    let fido = store.dogs[0].to_string();
    // Fido's version 1 moved after version 2 in the log.
    store
        .sql()
        .execute(
            "UPDATE events SET position = 100 WHERE stream_id = ?1 AND version = 1",
            [&fido],
        )
        .expect("plant");
    let out = problems(&store, &[]);
    assert!(
        out.contains(&format!(
            "stream `{fido}` version 2 position 2: a gap: versions 1 to 1 are missing"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "stream `{fido}` version 1 position 100: out of order"
        )),
        "{out}"
    );
}

#[test]
fn sqlite_integrity_check() {
    let store = SqliteStore::seeded();
    // An index whose definition no longer matches its contents: SQLite's own check finds it.
    let sql = store.sql();
    sql.execute_batch(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE INDEX events_by_topic ON events (stream_id, position)'
             WHERE name = 'events_by_topic';
         PRAGMA writable_schema = OFF;",
    )
    .expect("plant");
    drop(sql);
    let out = problems(&store, &[]);
    assert!(out.contains("problem: SQLite integrity check: "), "{out}");
    assert!(out.contains("events_by_topic"), "{out}");
}
