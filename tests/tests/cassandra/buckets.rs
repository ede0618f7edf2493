//! Cassandra partition buckets: streams built from appends of every size up to the bucket
//! size, so that appends start buckets, fill them and run past their ends; every read, look-up,
//! update and delete must see the stream as one sequence. Skipped loudly without
//! `EVENTSOURCING_TEST_CASSANDRA_URL`.

use eventsourcing::persistence::{EventQuery, PersistenceError, StoredEvent};
use eventsourcing::Conflict;
use eventsourcing_tests::conformance::append;

const BUCKET: u64 = 4;

fn versions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

#[test]
fn streams_cross_bucket_boundaries() {
    let Some(store) = eventsourcing_tests::fresh_cassandra_with("cassandra buckets", BUCKET) else {
        return;
    };
    let stream = uuid::Uuid::now_v7().to_string();
    // Sizes chosen to land on, before and past bucket boundaries: 1..4, then 4s, 3s, 2s.
    let sizes = [1, 2, 3, 4, 4, 3, 1, 4, 2, 2, 3, 4, 1, 1, 4, 3];
    let mut version = 0;
    for size in sizes {
        store
            .append(&[append(&stream, version, size)], None)
            .expect("append");
        // A stale writer at every step: a conflict naming the true version.
        if version > 0 {
            let error = store
                .append(&[append(&stream, version, 1)], None)
                .expect_err("stale");
            assert!(
                matches!(error, PersistenceError::Conflict(Conflict { actual, .. }) if actual == version + size),
                "{error:?}"
            );
        }
        version += size;
    }
    let total = version;
    let all: Vec<u64> = (1..=total).collect();
    let read = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(versions(&read), all, "one sequence over every bucket");
    for from in 1..=total + 1 {
        for to in [from, from + 1, from + 5, total, total + 3] {
            let query = EventQuery::all().from_version(from).to_version(to);
            let expected: Vec<u64> = all
                .iter()
                .copied()
                .filter(|v| (from..=to).contains(v))
                .collect();
            let got = versions(&store.select_events(&stream, &query).expect("select"));
            assert_eq!(got, expected, "{from}..={to}");
            let desc = versions(
                &store
                    .select_events(&stream, &query.descending())
                    .expect("select"),
            );
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(desc, reversed, "{from}..={to} descending");
            for limit in [1, 3, 7] {
                let got = versions(
                    &store
                        .select_events(&stream, &query.limit(limit))
                        .expect("select"),
                );
                assert_eq!(
                    got,
                    expected.iter().copied().take(limit).collect::<Vec<_>>(),
                    "{from}..={to} limit {limit}"
                );
                let got = versions(
                    &store
                        .select_events(&stream, &query.descending().limit(limit))
                        .expect("select"),
                );
                assert_eq!(
                    got,
                    reversed.iter().copied().take(limit).collect::<Vec<_>>(),
                    "{from}..={to} desc limit {limit}"
                );
            }
        }
    }
    // Every event is found by its id, whichever bucket holds it.
    for event in &read {
        let found = store
            .event_by_id(event.metadata.event_id)
            .expect("by id")
            .expect("found");
        assert_eq!(&found, event);
    }
    // Updates reach events in every bucket.
    let mut changed: Vec<StoredEvent> = read
        .iter()
        .filter(|e| e.version % 3 == 0)
        .cloned()
        .collect();
    for event in &mut changed {
        event.payload = format!(r#"{{"migrated":{}}}"#, event.version).into_bytes();
    }
    store.update_events(&changed).expect("update");
    let after = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    for event in &after {
        let migrated = event.version % 3 == 0;
        assert_eq!(
            event.payload.starts_with(br#"{"migrated""#),
            migrated,
            "version {}",
            event.version
        );
    }
    assert_eq!(store.delete_stream(&stream).expect("delete"), total);
    assert!(store
        .select_events(&stream, &EventQuery::all())
        .expect("select")
        .is_empty());
    store
        .append(&[append(&stream, 0, BUCKET)], None)
        .expect("starts again");
    assert_eq!(
        versions(
            &store
                .select_events(&stream, &EventQuery::all())
                .expect("select")
        ),
        (1..=BUCKET).collect::<Vec<_>>(),
        "no old bucket resurfaces"
    );
    // A writer that expects a version at a bucket boundary the stream never reached must not
    // open that bucket (it would leave a hole in the stream).
    for expected in [BUCKET + 2, 2 * BUCKET, 3 * BUCKET] {
        let error = store
            .append(&[append(&stream, expected, 1)], None)
            .expect_err("the stream is not there yet");
        assert!(
            matches!(error, PersistenceError::Conflict(Conflict { actual, .. }) if actual == BUCKET),
            "expected {expected}: {error:?}"
        );
    }
    let short = uuid::Uuid::now_v7().to_string();
    store.append(&[append(&short, 0, 2)], None).expect("append");
    let error = store
        .append(&[append(&short, BUCKET, 1)], None)
        .expect_err("at 2, not 4");
    assert!(
        matches!(
            error,
            PersistenceError::Conflict(Conflict { actual: 2, .. })
        ),
        "{error:?}"
    );
    let error = store
        .append(&[append(&stream, BUCKET, BUCKET + 1)], None)
        .expect_err("more than a bucket at once");
    assert!(
        matches!(error, PersistenceError::InvalidBatch { .. }),
        "{error:?}"
    );
}
