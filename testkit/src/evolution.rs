//! Scenarios for how stored state changes over time — snapshots, time travel, upcasting,
//! aliases, stored-event migration, deletion, compression and encryption — written once and
//! run on every backend.
//!
//! A backend's test file supplies a constructor returning a fresh store (or `None` after a
//! loud skip) and invokes [`evolution_scenarios!`](crate::evolution_scenarios):
//!
//! ```ignore
//! fn fresh() -> Option<Arc<dyn Storage>> { Some(Arc::new(MemoryRecorder::new())) }
//! eventsourcing_testkit::evolution_scenarios!(fresh);
//! ```
//!
//! The scenarios only touch streams they create, so a store shared with other tests works.

use std::collections::HashSet;
use std::sync::Arc;

use eventsourcing::application::{Application, ApplicationError, Migration};
use eventsourcing::domain::{Aggregate, Metadata, Timestamp};
use eventsourcing::persistence::{
    AggregateRecorder, CipherKey, Compression, Encryption, EventQuery, Mapper, PersistenceError,
    SnapshotRecorder, Storage, StoredEvent, StoredSnapshot, StreamAppend,
};
use uuid::Uuid;

use crate::counting::CountingStorage;
use crate::domain_model::{
    self as model, Deposited, Ledger, LedgerEvent, Opened, Tally, TallyEvent,
};

/// A store under test.
pub type Store = Arc<dyn Storage>;

fn app(store: &Store) -> Application {
    model::register();
    Application::builder()
        .storage(Arc::clone(store))
        .build()
        .expect("build application")
}

/// Saves a new ledger with `deposits` deposits of 1 to 1..=deposits cents, in saves of
/// `per_save` events.
fn ledger_with(app: &Application, deposits: u64, per_save: u64) -> Aggregate<Ledger> {
    let mut ledger = Aggregate::<Ledger>::create(Ledger::opened("ann")).expect("open");
    for amount in 1..=deposits {
        ledger.record(Ledger::deposit(amount)).expect("deposit");
        if amount % per_save == 0 {
            let _ = app.save(&mut ledger).expect("save");
        }
    }
    let _ = app.save(&mut ledger).expect("save");
    ledger
}

/// The log position of a stream's first event: where a migration of it starts.
fn first_position(store: &Store, stream: &str) -> u64 {
    store
        .select_events(stream, &EventQuery::all().limit(1))
        .expect("select")[0]
        .position
        .expect("position")
}

/// The balance after deposits of 1..=n cents.
fn triangle(n: u64) -> i64 {
    i64::try_from(n * (n + 1) / 2).expect("small")
}

/// Snapshots taken explicitly at the current version and at a given version are used by
/// `get` and `get_at`; a snapshot of unsaved events is refused.
pub fn snapshot_at_current_and_given_version(store: Store) {
    let app = app(&store);
    let ledger = ledger_with(&app, 30, 10);
    let repo = app.repository::<Ledger>();
    assert_eq!(
        app.take_snapshot::<Ledger>(ledger.id(), None)
            .expect("snapshot"),
        31
    );
    assert_eq!(
        repo.take_snapshot(ledger.id(), Some(11)).expect("snapshot"),
        11
    );
    let (latest, report) = repo.load(ledger.id(), None).expect("load");
    assert_eq!(report.snapshot_version, Some(31));
    assert_eq!(report.events_replayed, 0);
    assert_eq!(latest.balance, triangle(30));
    assert_eq!(latest.version(), 31);
    assert_eq!(latest.created_on(), ledger.created_on());
    assert_eq!(latest.modified_on(), ledger.modified_on());

    let (past, report) = repo.load(ledger.id(), Some(20)).expect("load");
    assert_eq!(report.snapshot_version, Some(11));
    assert_eq!(report.events_replayed, 9);
    assert_eq!(past.balance, triangle(19));
    assert_eq!(past.version(), 20);

    let (early, report) = repo.load(ledger.id(), Some(5)).expect("load");
    assert_eq!(report.snapshot_version, None);
    assert_eq!(early.balance, triangle(4));

    let mut unsaved = repo.get(ledger.id()).expect("get");
    unsaved.record(Ledger::withdraw(1)).expect("withdraw");
    assert!(matches!(
        repo.snapshot(&unsaved),
        Err(ApplicationError::UnsavedEvents { pending: 1, .. })
    ));
    assert_eq!(app.event_store().snapshot_stats().taken, 2);
}

/// Automatic snapshots: per entity type on the application, declared on the entity
/// (`SnapshotCodec::every`), or a global default; taken when a save crosses a multiple.
pub fn automatic_snapshots(store: Store) {
    model::register();
    let app = Application::builder()
        .storage(Arc::clone(&store))
        .snapshot_every::<Ledger>(10)
        .build()
        .expect("build");
    // 1 + 25 events saved 4 at a time: saves end at versions 5, 9, 13, 17, 21, 25, 26.
    let ledger = ledger_with(&app, 25, 4);
    let versions = |id: Uuid| -> Vec<u64> {
        let mut found = Vec::new();
        let mut at = None;
        while let Some(s) = store.latest_snapshot(&id.to_string(), at).expect("latest") {
            found.push(s.version);
            if s.version == 0 {
                break;
            }
            at = Some(s.version - 1);
        }
        found.reverse();
        found
    };
    assert_eq!(versions(ledger.id()), vec![13, 21]);
    assert_eq!(
        app.repository::<Ledger>()
            .get(ledger.id())
            .expect("get")
            .balance,
        triangle(25)
    );

    // Tally declares every(5) itself.
    let mut tally = Aggregate::<Tally>::create(TallyEvent::Started).expect("start");
    for _ in 0..11 {
        tally.record(TallyEvent::Counted).expect("count");
        let saved = app.save(&mut tally).expect("save");
        if tally.version() % 5 == 0 {
            assert_eq!(saved.snapshots, vec![(tally.id(), tally.version())]);
        } else {
            assert!(saved.snapshots.is_empty());
        }
    }
    assert_eq!(versions(tally.id()), vec![5, 10]);

    // An application-level setting overrides the entity's own, and 0 turns it off; the
    // default applies to entities without one (Ledger has none of its own).
    let quiet = Application::builder()
        .storage(Arc::clone(&store))
        .snapshot_every::<Tally>(0)
        .snapshot_default_every(3)
        .build()
        .expect("build");
    let mut tally = Aggregate::<Tally>::create(TallyEvent::Started).expect("start");
    for _ in 0..9 {
        tally.record(TallyEvent::Counted).expect("count");
    }
    let _ = quiet.save(&mut tally).expect("save");
    assert!(versions(tally.id()).is_empty());
    let ledger = ledger_with(&quiet, 4, 1);
    assert_eq!(versions(ledger.id()), vec![3]);

    // An event-only application never snapshots, and says so when asked to.
    let events_only = Application::builder()
        .recorder(Arc::clone(&store) as Store)
        .snapshot_every::<Ledger>(1)
        .build()
        .expect("build");
    let ledger = ledger_with(&events_only, 3, 1);
    assert!(versions(ledger.id()).is_empty());
    assert!(matches!(
        events_only.take_snapshot::<Ledger>(ledger.id(), None),
        Err(ApplicationError::NoSnapshotStore)
    ));
}

/// Loading from a snapshot reads the same number of events whatever the history length: the
/// events since the latest snapshot. Prints the counts.
pub fn snapshots_bound_replay(store: Store) {
    model::register();
    let counting = Arc::new(CountingStorage::new(store));
    let app = Application::builder()
        .storage(Arc::clone(&counting) as Store)
        .snapshot_every::<Ledger>(100)
        .build()
        .expect("build");
    let without = Application::builder()
        .recorder(Arc::clone(&counting) as Store)
        .build()
        .expect("build");
    let mut read = Vec::new();
    for deposits in [149_u64, 1_049, 4_049] {
        // 1 + deposits events, saved 50 at a time: the last snapshot is at a multiple of 100,
        // 50 events before the end.
        let ledger = ledger_with(&app, deposits, 50);
        counting.reset();
        let (loaded, report) = app
            .repository::<Ledger>()
            .load(ledger.id(), None)
            .expect("load");
        assert_eq!(loaded.balance, triangle(deposits));
        assert_eq!(loaded.version(), deposits + 1);
        let with_snapshot = counting.events_read();
        // The snapshot's own event is read again, to check that it is still there.
        assert_eq!(report.events_replayed + 1, with_snapshot);
        counting.reset();
        let full = without
            .repository::<Ledger>()
            .get(ledger.id())
            .expect("get");
        assert_eq!(full.balance, loaded.balance);
        let full_replay = counting.events_read();
        println!(
            "history of {} events: {with_snapshot} events read with snapshots \
             (snapshot at {:?}), {full_replay} without",
            deposits + 1,
            report.snapshot_version
        );
        read.push((with_snapshot, full_replay));
    }
    assert!(
        read.iter().all(|&(with, _)| with == read[0].0),
        "events read from a snapshot vary with history length: {read:?}"
    );
    assert!(read[0].0 <= 100, "{read:?}");
    assert_eq!(
        read.iter().map(|&(_, full)| full).collect::<Vec<_>>(),
        vec![150, 1_050, 4_050]
    );
}

/// Time travel: the aggregate at every version, through snapshots at or below it, and an
/// entity's events from a given version.
pub fn time_travel(store: Store) {
    model::register();
    let app = Application::builder()
        .storage(Arc::clone(&store))
        .snapshot_every::<Ledger>(10)
        .build()
        .expect("build");
    let ledger = ledger_with(&app, 24, 1);
    let repo = app.repository::<Ledger>();
    for version in 1..=25 {
        let (past, report) = repo.load(ledger.id(), Some(version)).expect("get_at");
        assert_eq!(past.version(), version);
        assert_eq!(past.balance, triangle(version - 1), "at version {version}");
        let expected_snapshot = (version >= 10).then_some(version / 10 * 10);
        assert_eq!(report.snapshot_version, expected_snapshot, "at {version}");
        assert_eq!(
            repo.get_at(ledger.id(), version).expect("get_at").balance,
            past.balance
        );
    }
    assert!(
        matches!(
            repo.get_at(ledger.id(), 1000),
            Err(ApplicationError::VersionNotFound {
                requested: 1000,
                latest: 25,
                ..
            })
        ),
        "past the last version is a typed error, not the latest state"
    );
    assert!(matches!(
        repo.get_at(Uuid::now_v7(), 3),
        Err(ApplicationError::NotFound { .. })
    ));
    let later: Vec<_> = app
        .event_store()
        .select::<LedgerEvent>(ledger.id(), &EventQuery::all().from_version(22))
        .expect("select");
    assert_eq!(
        later.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![22, 23, 24, 25]
    );
    assert_eq!(later[0].event, Ledger::deposit(21));
    let window: Vec<_> = app
        .event_store()
        .select::<LedgerEvent>(
            ledger.id(),
            &EventQuery::all().from_version(3).to_version(4),
        )
        .expect("select");
    assert_eq!(window.len(), 2);
}

fn stored(
    stream: Uuid,
    version: u64,
    topic: &str,
    schema_version: u32,
    payload: &str,
) -> StoredEvent {
    StoredEvent {
        stream_id: stream.to_string(),
        version,
        topic: topic.to_owned(),
        schema_version,
        payload: payload.as_bytes().to_vec(),
        metadata: Metadata::new(),
        position: None,
    }
}

/// What "old code" left in the store: one ledger opened under the old entity name, with
/// deposits at schema versions 1, 2 and 3 and a withdrawal under both old topics.
fn old_history(store: &Store) -> Uuid {
    let id = Uuid::now_v7();
    let events = vec![
        stored(id, 1, "LegacyAccount.Opened", 1, r#"{"owner":"ann"}"#),
        stored(id, 2, "LegacyAccount.Deposited", 1, r#"{"cents":100}"#),
        stored(id, 3, "Ledger.Deposited", 1, r#"{"cents":200}"#),
        stored(
            id,
            4,
            "Ledger.Deposited",
            2,
            r#"{"cents":300,"currency":"USD"}"#,
        ),
        stored(
            id,
            5,
            "Ledger.Deposited",
            3,
            r#"{"amount":400,"currency":"EUR","memo":"new"}"#,
        ),
        stored(id, 6, "LegacyAccount.Debited", 1, r#"{"amount":50}"#),
        stored(id, 7, "Ledger.Debited", 1, r#"{"amount":25}"#),
    ];
    store
        .append(
            &[StreamAppend {
                stream_id: id.to_string(),
                expected_version: 0,
                events,
            }],
            None,
        )
        .expect("append old events");
    id
}

fn deposit(amount: u64, currency: &str, memo: &str) -> LedgerEvent {
    LedgerEvent::Deposited(Deposited {
        amount,
        currency: currency.into(),
        memo: memo.into(),
    })
}

fn expected_old_history() -> Vec<LedgerEvent> {
    vec![
        LedgerEvent::Opened(Opened {
            owner: "ann".into(),
        }),
        deposit(100, "EUR", ""),
        deposit(200, "EUR", ""),
        deposit(300, "USD", ""),
        deposit(400, "EUR", "new"),
        Ledger::withdraw(50),
        Ledger::withdraw(25),
    ]
}

/// Events stored at schema versions 1, 2 and 3 (by three deployments) are upcast in a chain
/// on every read path: repository load, event store replay, by id, by topic and the
/// notification log.
pub fn upcast_events_across_three_versions(store: Store) {
    let app = app(&store);
    let id = old_history(&store);
    let expected = expected_old_history();

    let ledger = app.repository::<Ledger>().get(id).expect("load");
    assert_eq!(ledger.owner, "ann");
    assert_eq!(ledger.balance, 1000 - 75);
    assert_eq!(ledger.deposits, 4);
    assert_eq!(ledger.version(), 7);

    let replayed: Vec<LedgerEvent> = app
        .event_store()
        .events::<LedgerEvent>(id)
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(replayed, expected);

    let raw = store
        .select_events(&id.to_string(), &EventQuery::all())
        .expect("select");
    let by_id = app
        .event_store()
        .event_by_id::<LedgerEvent>(raw[1].metadata.event_id)
        .expect("by id")
        .expect("found");
    assert_eq!(by_id.event, expected[1]);

    // The global log, where the store keeps one.
    if crate::conformance::has_global_log(&store) {
        let log = app.notification_log();
        let from = raw[0].position.expect("position");
        let notifications: Vec<LedgerEvent> = log
            .select(from, 7)
            .expect("notifications")
            .into_iter()
            .filter(|e| e.stream_id == id.to_string())
            .map(|e| log.decode::<LedgerEvent>(e).expect("decode").event)
            .collect();
        assert_eq!(notifications, expected);

        // The notification log filters by stored topic: old topics are stored as they were.
        let by_topic: Vec<LedgerEvent> = app
            .event_store()
            .events_by_topic::<LedgerEvent>("Ledger.Deposited", from, 100)
            .expect("by topic")
            .into_iter()
            .filter(|e| e.stream_id == id)
            .map(|e| e.event)
            .collect();
        assert_eq!(by_topic, expected[2..5].to_vec());
    }

    // A version newer than the code is a typed error, never a guess.
    let future = Uuid::now_v7();
    store
        .append(
            &[StreamAppend {
                stream_id: future.to_string(),
                expected_version: 0,
                events: vec![
                    stored(future, 1, "Ledger.Opened", 1, r#"{"owner":"bob"}"#),
                    stored(future, 2, "Ledger.Deposited", 4, r#"{"amount":1}"#),
                ],
            }],
            None,
        )
        .expect("append");
    let error = app
        .repository::<Ledger>()
        .get(future)
        .expect_err("future version");
    assert!(
        matches!(
            error,
            ApplicationError::Persistence(PersistenceError::Decode {
                source: eventsourcing::DomainError::FutureVersion { .. },
                ..
            })
        ),
        "{error}"
    );
}

/// A snapshot as older code wrote it: its times are those of the stream's first event and of
/// the event at `version` (a load checks the latter against the stream).
fn snapshot(
    store: &Store,
    id: Uuid,
    version: u64,
    schema_version: u32,
    state: &str,
) -> StoredSnapshot {
    let events = store
        .select_events(&id.to_string(), &EventQuery::all().to_version(version))
        .expect("select");
    let time =
        |e: Option<&StoredEvent>| e.map_or(Timestamp::from_micros(0), |e| e.metadata.timestamp);
    StoredSnapshot {
        stream_id: id.to_string(),
        version,
        topic: "Ledger".into(),
        schema_version,
        state: state.as_bytes().to_vec(),
        created_on: time(events.first()),
        modified_on: time(events.last()),
    }
}

/// Snapshot states written at schema versions 1 and 2 by older code are upcast to version 3
/// on load; the events after them are replayed on top.
pub fn upcast_snapshots_across_three_versions(store: Store) {
    let app = app(&store);
    let id = old_history(&store);
    let repo = app.repository::<Ledger>();
    // Old code snapshotted at version 3 (v1 state) and at version 5 (v2 state).
    store
        .put_snapshot(&snapshot(
            &store,
            id,
            3,
            1,
            r#"{"owner":"ann","total":300}"#,
        ))
        .expect("put v1");
    store
        .put_snapshot(&snapshot(
            &store,
            id,
            5,
            2,
            r#"{"owner":"ann","total":1000,"deposits":4}"#,
        ))
        .expect("put v2");

    let (at4, report) = repo.load(id, Some(4)).expect("load");
    assert_eq!(report.snapshot_version, Some(3));
    assert_eq!(report.events_replayed, 1);
    // v1 states did not count deposits: the upcaster says 0, then one more is replayed.
    assert_eq!(
        (at4.balance, at4.deposits, at4.owner.as_str()),
        (600, 1, "ann")
    );

    let (latest, report) = repo.load(id, None).expect("load");
    assert_eq!(report.snapshot_version, Some(5));
    assert_eq!(report.events_replayed, 2);
    assert_eq!((latest.balance, latest.deposits), (925, 4));
    let first = store
        .select_events(&id.to_string(), &EventQuery::all().limit(1))
        .expect("select");
    assert_eq!(
        latest.created_on(),
        first[0].metadata.timestamp,
        "from the snapshot"
    );

    // New code writes version 3, and reads it back without upcasting.
    repo.take_snapshot(id, None).expect("snapshot");
    let written = store
        .latest_snapshot(&id.to_string(), None)
        .expect("latest")
        .expect("found");
    assert_eq!((written.version, written.schema_version), (7, 3));
    let (again, report) = repo.load(id, None).expect("load");
    assert_eq!(report.snapshot_version, Some(7));
    assert_eq!(again.state(), latest.state());
    assert_eq!(app.event_store().snapshot_stats().fallbacks, 0);
}

/// A snapshot that cannot be decoded (no upcaster from its version, a newer version, bad
/// bytes) never makes the aggregate unloadable: every event is replayed instead, the report
/// says why, and the fallback is counted.
pub fn undecodable_snapshots_fall_back_to_replay(store: Store) {
    let app = app(&store);
    let ledger = ledger_with(&app, 10, 10);
    let repo = app.repository::<Ledger>();
    let cases = [
        (11, 0, r#"{"owner":"ann"}"#), // no upcaster from version 0
        (11, 9, r#"{"owner":"ann"}"#), // newer than the code
        (11, 3, "not json"),           // garbage
        (11, 3, r#"{"owner":"ann"}"#), // wrong shape
    ];
    for (round, (version, schema, state)) in (1..).zip(cases) {
        store
            .put_snapshot(&snapshot(&store, ledger.id(), version, schema, state))
            .expect("put");
        let (loaded, report) = repo.load(ledger.id(), None).expect("falls back");
        assert_eq!(report.snapshot_version, None);
        assert_eq!(report.events_replayed, 11);
        assert!(report.snapshot_error.is_some());
        assert_eq!(loaded.balance, triangle(10));
        assert_eq!(app.event_store().snapshot_stats().fallbacks, round);
    }
    // Taking a fresh snapshot replaces the bad one.
    repo.take_snapshot(ledger.id(), None).expect("snapshot");
    let (_, report) = repo.load(ledger.id(), None).expect("load");
    assert_eq!(report.snapshot_version, Some(11));
}

/// Renamed events and entities: events stored under old topics resolve to the new types on
/// read, and a migration renames them for good.
pub fn aliases_resolve_on_read(store: Store) {
    let app = app(&store);
    let id = Uuid::now_v7();
    store
        .append(
            &[StreamAppend {
                stream_id: id.to_string(),
                expected_version: 0,
                events: vec![
                    stored(id, 1, "LegacyAccount.Opened", 1, r#"{"owner":"cy"}"#),
                    stored(id, 2, "Ledger.Debited", 1, r#"{"amount":5}"#),
                    stored(id, 3, "LegacyAccount.Debited", 1, r#"{"amount":6}"#),
                ],
            }],
            None,
        )
        .expect("append");
    let ledger = app.repository::<Ledger>().get(id).expect("get");
    assert_eq!((ledger.owner.as_str(), ledger.balance), ("cy", -11));
    let topics: Vec<&str> = app
        .event_store()
        .events::<LedgerEvent>(id)
        .expect("events")
        .iter()
        .map(|e| e.topic())
        .collect();
    assert_eq!(
        topics,
        vec!["Ledger.Opened", "Ledger.Withdrawn", "Ledger.Withdrawn"]
    );
    // An unknown topic is a typed error listing the known ones.
    let error = eventsourcing::domain::resolve_topic("LegacyAccount.Closed").expect_err("unknown");
    assert!(error.to_string().contains("Ledger.Withdrawn"), "{error}");

    // Migration scans the global log, where the store keeps one.
    if !crate::conformance::has_global_log(&store) {
        return;
    }
    let first = first_position(&store, &id.to_string());
    Migration::upcast(app.event_store())
        .run(first)
        .expect("migrate");
    let stored_topics: Vec<String> = store
        .select_events(&id.to_string(), &EventQuery::all())
        .expect("select")
        .into_iter()
        .map(|e| e.topic)
        .collect();
    assert_eq!(
        stored_topics,
        vec!["Ledger.Opened", "Ledger.Withdrawn", "Ledger.Withdrawn"]
    );
}

fn ours<'a, T>(
    items: &'a [T],
    streams: &'a HashSet<String>,
    stream: impl Fn(&T) -> &str + 'a,
) -> usize {
    items.iter().filter(|i| streams.contains(stream(i))).count()
}

/// Stored-event migration: rewrites old-version events in place in bounded batches, can be
/// interrupted (a batch limit) and resumed from its cursor, and is verifiable afterwards.
/// Positions, event ids and decoded values do not change. A custom function migrates too.
pub fn migration_resumes_and_verifies(store: Store) {
    let app = app(&store);
    let ids: Vec<Uuid> = (0..3).map(|_| old_history(&store)).collect();
    let streams: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    let before: Vec<Vec<StoredEvent>> = ids
        .iter()
        .map(|id| {
            store
                .select_events(&id.to_string(), &EventQuery::all())
                .expect("select")
        })
        .collect();
    let first = before[0][0].position.expect("position");
    let migration = Migration::upcast(app.event_store());

    let report = migration.verify().expect("verify");
    // Per history: 4 old-version or aliased deposits/opening, 2 aliased withdrawals.
    assert_eq!(ours(&report.outdated, &streams, |e| &e.stream_id), 3 * 6);
    assert_eq!(
        ours(&report.undecodable, &streams, |(e, _)| &e.stream_id),
        0
    );

    // Interrupted after two batches of 4 events...
    let partial = migration
        .batch_size(4)
        .max_batches(2)
        .run(first)
        .expect("partial run");
    assert!(!partial.done);
    assert_eq!(partial.batches, 2);
    assert_eq!(partial.scanned, 8);
    assert!(partial.next_position >= first + 8);
    // Everything of ours before the cursor is migrated, everything after it is not yet.
    let halfway = migration.verify().expect("verify");
    let outdated: Vec<_> = halfway
        .outdated
        .iter()
        .filter(|e| streams.contains(&e.stream_id))
        .collect();
    assert!(!outdated.is_empty());
    assert!(outdated.iter().all(|e| e.position >= partial.next_position));
    let before_cursor = before
        .iter()
        .flatten()
        .filter(|e| e.position.is_some_and(|p| p < partial.next_position))
        .filter(|e| {
            !matches!(
                (e.topic.as_str(), e.schema_version),
                ("Ledger.Deposited", 3) | ("Ledger.Opened" | "Ledger.Withdrawn", 1)
            )
        })
        .count();
    assert_eq!(outdated.len(), 18 - before_cursor);

    // ...resumed from its cursor, to the end.
    let rest = migration
        .batch_size(4)
        .run(partial.next_position)
        .expect("resume");
    assert!(rest.done);
    // (At least: a store shared with other tests may hold their old events too.)
    assert!(partial.rewritten + rest.rewritten >= 18);
    let after = migration.verify().expect("verify");
    assert_eq!(ours(&after.outdated, &streams, |e| &e.stream_id), 0);
    assert_eq!(ours(&after.undecodable, &streams, |(e, _)| &e.stream_id), 0);
    let migrated: Vec<Vec<StoredEvent>> = ids
        .iter()
        .map(|id| {
            store
                .select_events(&id.to_string(), &EventQuery::all())
                .expect("select")
        })
        .collect();

    // Running again from the start changes nothing of ours.
    migration.run(first).expect("again");
    for (id, migrated) in ids.iter().zip(&migrated) {
        let now = store
            .select_events(&id.to_string(), &EventQuery::all())
            .expect("select");
        assert_eq!(&now, migrated);
    }

    for (id, old) in ids.iter().zip(&before) {
        let new = store
            .select_events(&id.to_string(), &EventQuery::all())
            .expect("select");
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(
                (o.position, o.metadata.event_id),
                (n.position, n.metadata.event_id)
            );
        }
        let deposit = new.iter().find(|e| e.version == 2).expect("deposit");
        assert_eq!(
            (deposit.topic.as_str(), deposit.schema_version),
            ("Ledger.Deposited", 3)
        );
        let events: Vec<LedgerEvent> = app
            .event_store()
            .events::<LedgerEvent>(*id)
            .expect("events")
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, expected_old_history());
    }

    // A user function: put a memo on every deposit of the first ledger.
    fn memo(mut event: StoredEvent) -> Option<StoredEvent> {
        if event.topic != "Ledger.Deposited" {
            return None;
        }
        let mut value: serde_json::Value = serde_json::from_slice(&event.payload).ok()?;
        value["memo"] = "migrated".into();
        event.payload = serde_json::to_vec(&value).ok()?;
        Some(event)
    }
    let custom = Migration::with(app.event_store(), memo).batch_size(3);
    let progress = custom.run(first).expect("custom");
    assert!(progress.done);
    let ledger_events = app
        .event_store()
        .events::<LedgerEvent>(ids[0])
        .expect("events");
    assert!(ledger_events.iter().all(|e| match &e.event {
        LedgerEvent::Deposited(d) => d.memo == "migrated",
        _ => true,
    }));
}

/// A migration that changes what events mean (here: every deposit doubled) leaves no snapshot
/// of the old meaning behind: a load after it equals a full replay of the migrated events.
pub fn migration_invalidates_snapshots(store: Store) {
    fn double(mut event: StoredEvent) -> Option<StoredEvent> {
        if event.topic != "Ledger.Deposited" {
            return None;
        }
        let mut value: serde_json::Value = serde_json::from_slice(&event.payload).ok()?;
        let amount = value["amount"].as_i64()?;
        value["amount"] = (amount * 2).into();
        event.payload = serde_json::to_vec(&value).ok()?;
        Some(event)
    }
    let app = app(&store);
    let ledger = ledger_with(&app, 5, 5);
    app.take_snapshot::<Ledger>(ledger.id(), None)
        .expect("snapshot");
    let first = first_position(&store, &ledger.id().to_string());
    Migration::with(app.event_store(), double)
        .run(first)
        .expect("migrate");
    let (loaded, report) = app
        .repository::<Ledger>()
        .load(ledger.id(), None)
        .expect("load");
    assert_eq!(loaded.balance, 2 * triangle(5), "{report:?}");
    assert_eq!(report.snapshot_version, None, "the old snapshot is gone");
}

/// The store and stream that [`racing_memo`] rewrites once, as a concurrent writer would.
static RACE: std::sync::Mutex<Option<(Store, String)>> = std::sync::Mutex::new(None);

/// A migration function that puts a memo on deposits; the first time, before returning, a
/// concurrent writer deletes the stream and writes it again (between the migration's read of
/// the page and its write).
fn racing_memo(mut event: StoredEvent) -> Option<StoredEvent> {
    let race = RACE.lock().map(|mut r| r.take()).unwrap_or(None);
    if let Some((store, stream)) = race {
        store.delete_stream(&stream).expect("delete");
        let events = (1..=3)
            .map(|v| {
                let (topic, payload) = if v == 1 {
                    ("Ledger.Opened", r#"{"owner":"new"}"#.to_owned())
                } else {
                    (
                        "Ledger.Deposited",
                        format!(r#"{{"amount":{v},"memo":"new"}}"#),
                    )
                };
                StoredEvent {
                    stream_id: stream.clone(),
                    version: v,
                    topic: topic.into(),
                    schema_version: if v == 1 { 1 } else { 3 },
                    payload: payload.into_bytes(),
                    metadata: eventsourcing::domain::Metadata::new(),
                    position: None,
                }
            })
            .collect();
        store
            .append(
                &[StreamAppend {
                    stream_id: stream,
                    expected_version: 0,
                    events,
                }],
                None,
            )
            .expect("the concurrent writer");
    }
    if event.topic != "Ledger.Deposited" {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(&event.payload).ok()?;
    value["memo"] = "migrated".into();
    event.payload = serde_json::to_vec(&value).ok()?;
    Some(event)
}

/// A migration never overwrites a concurrent writer's events: an event deleted and written
/// again between the page's read and its write fails the page's write (compare and swap on
/// the event id), and the migration stops with the cursor of that page; resumed from it, it
/// reads the new events and completes. Any failure (here a wrong key) returns a cursor too.
pub fn migration_stops_with_a_cursor_and_resumes(store: Store) {
    let app = app(&store);
    let ledger = ledger_with(&app, 4, 5);
    let stream = ledger.id().to_string();
    let first = first_position(&store, &stream);
    *RACE.lock().expect("lock") = Some((Arc::clone(&store), stream.clone()));
    let error = Migration::with(app.event_store(), racing_memo)
        .run(first)
        .expect_err("the page changed under the migration");
    let ApplicationError::MigrationStopped {
        resume_from,
        source,
    } = error
    else {
        panic!("expected MigrationStopped, got {error:?}");
    };
    assert_eq!(resume_from, first, "the cursor of the failed page");
    assert!(
        matches!(
            *source,
            ApplicationError::Persistence(PersistenceError::EventNotFound { .. })
        ),
        "{source:?}"
    );
    let written = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert_eq!(written.len(), 3);
    assert!(
        written
            .iter()
            .all(|e| !String::from_utf8_lossy(&e.payload).contains("migrated")),
        "the concurrent writer's events are not overwritten"
    );
    let progress = Migration::with(app.event_store(), racing_memo)
        .run(resume_from)
        .expect("resumed");
    assert!(progress.done);
    let migrated = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert!(migrated[1..]
        .iter()
        .all(|e| String::from_utf8_lossy(&e.payload).contains("migrated")));

    // A failure of another kind: reading with a key the payloads were not written with.
    let key = CipherKey::generate().expect("key");
    let wrong = Mapper::new().with_transcoder(Arc::new(Encryption::new(&key)));
    let error = Migration::upcast(app.event_store())
        .reading_with(&wrong)
        .run(first)
        .expect_err("wrong key");
    assert!(
        matches!(error, ApplicationError::MigrationStopped { resume_from, .. } if resume_from == first),
        "{error:?}"
    );
}

/// Deleting an aggregate's events through the application also deletes its snapshots.
pub fn delete_removes_snapshots(store: Store) {
    let app = app(&store);
    let ledger = ledger_with(&app, 5, 5);
    app.take_snapshot::<Ledger>(ledger.id(), None)
        .expect("snapshot");
    app.take_snapshot::<Ledger>(ledger.id(), Some(2))
        .expect("snapshot");
    assert_eq!(
        app.event_store()
            .delete_stream(ledger.id())
            .expect("delete"),
        6
    );
    assert!(store
        .latest_snapshot(&ledger.id().to_string(), None)
        .expect("latest")
        .is_none());
    assert!(matches!(
        app.repository::<Ledger>().get(ledger.id()),
        Err(ApplicationError::NotFound { .. })
    ));
}

/// A snapshot never outlives its events nor runs ahead of them. A `take_snapshot` that races
/// `delete_stream` can write its snapshot after the delete committed; a load must then find
/// the aggregate gone, not the old state. A stream re-created with the same id (process
/// applications derive ids) reads as its new history, and a snapshot above the stream's
/// version is ignored.
pub fn snapshots_never_outlive_their_events(store: Store) {
    let app = app(&store);
    let ledger = ledger_with(&app, 5, 5);
    let id = ledger.id();
    let stream = id.to_string();
    app.take_snapshot::<Ledger>(id, None).expect("snapshot");
    let racing = store
        .latest_snapshot(&stream, None)
        .expect("latest")
        .expect("the snapshot");
    // The race: the delete commits, then the snapshot taken before it is written.
    app.event_store().delete_stream(id).expect("delete");
    store.put_snapshot(&racing).expect("late snapshot");
    assert!(
        matches!(
            app.repository::<Ledger>().get(id),
            Err(ApplicationError::NotFound { .. })
        ),
        "a deleted aggregate does not come back from a snapshot"
    );
    // The id is used again for a new, longer history.
    let mut again = Aggregate::<Ledger>::create_with_id(id, Ledger::opened("bob")).expect("open");
    for amount in 1..=7 {
        again.record(Ledger::deposit(amount * 10)).expect("deposit");
    }
    app.save(&mut again).expect("save the new history");
    let (loaded, report) = app.repository::<Ledger>().load(id, None).expect("load");
    assert_eq!(
        (loaded.owner.as_str(), loaded.balance, loaded.version()),
        ("bob", 280, 8),
        "the new history, not the stale snapshot: {report:?}"
    );
    assert!(report.snapshot_error.is_some(), "{report:?}");
    // A snapshot above the stream's version (written by a buggy or hostile process).
    let short = ledger_with(&app, 2, 2);
    let mut ahead = racing.clone();
    ahead.stream_id = short.id().to_string();
    ahead.version = 10;
    store.put_snapshot(&ahead).expect("snapshot ahead");
    let loaded = app.repository::<Ledger>().get(short.id()).expect("get");
    assert_eq!(
        (loaded.owner.as_str(), loaded.balance, loaded.version()),
        ("ann", 3, 3)
    );
}

/// Compression and encryption apply to event payloads and snapshot states alike, are chosen
/// by configuration, and a wrong key or tampered bytes are a typed error.
pub fn transcoded_events_and_snapshots(store: Store) {
    model::register();
    let key = CipherKey::generate().expect("key");
    let config = |name: &str| match name {
        "EVENTSOURCING_COMPRESSION" => Some("zlib".to_owned()),
        "EVENTSOURCING_CIPHER_KEY" => Some(key.to_base64()),
        _ => None,
    };
    let app = Application::builder()
        .storage(Arc::clone(&store))
        .transcoders_from(config)
        .expect("config")
        .snapshot_every::<Ledger>(5)
        .build()
        .expect("build");
    let mut ledger = Aggregate::<Ledger>::create(Ledger::opened("secret-owner")).expect("open");
    ledger
        .record(deposit(7, "EUR", &"confidential ".repeat(40)))
        .expect("deposit");
    for amount in 1..=4 {
        ledger.record(Ledger::deposit(amount)).expect("deposit");
    }
    let _ = app.save(&mut ledger).expect("save");

    let raw = store
        .select_events(&ledger.id().to_string(), &EventQuery::all())
        .expect("select");
    let plain_len = 13 * 40;
    for event in &raw {
        let text = String::from_utf8_lossy(&event.payload);
        assert!(!text.contains("secret") && !text.contains("confidential"));
        assert_eq!(
            event.payload[0], 2,
            "format byte of encryption v2 (bound to the row, with a key id)"
        );
    }
    // Compressed before encryption: the long memo shrinks.
    assert!(raw[1].payload.len() < plain_len, "{}", raw[1].payload.len());
    let snap = store
        .latest_snapshot(&ledger.id().to_string(), None)
        .expect("latest")
        .expect("automatic snapshot");
    assert!(!String::from_utf8_lossy(&snap.state).contains("secret"));
    let (loaded, report) = app
        .repository::<Ledger>()
        .load(ledger.id(), None)
        .expect("load");
    assert_eq!(report.snapshot_version, Some(6));
    assert_eq!(loaded.owner, "secret-owner");

    // The wrong key: events are a typed transcoding error; the snapshot is skipped.
    let other = Application::builder()
        .storage(Arc::clone(&store))
        .transcoder(Arc::new(Compression::new()))
        .transcoder(Arc::new(Encryption::new(
            &CipherKey::generate().expect("key"),
        )))
        .build()
        .expect("build");
    let error = other
        .repository::<Ledger>()
        .get(ledger.id())
        .expect_err("wrong key");
    assert!(
        matches!(
            error,
            ApplicationError::Persistence(PersistenceError::Transcode { .. })
        ),
        "{error}"
    );
    assert_eq!(other.event_store().snapshot_stats().fallbacks, 1);

    // Tampered bytes: one flipped bit in a stored payload.
    let mut tampered = raw[2].clone();
    let last = tampered.payload.len() - 1;
    tampered.payload[last] ^= 1;
    store.update_events(&[tampered]).expect("tamper");
    store
        .delete_snapshots(&ledger.id().to_string())
        .expect("drop snapshots");
    let error = app
        .repository::<Ledger>()
        .get(ledger.id())
        .expect_err("tampered");
    assert!(
        matches!(
            error,
            ApplicationError::Persistence(PersistenceError::Transcode { .. })
        ),
        "{error}"
    );

    // Misconfiguration is reported when the application is built.
    let bad_key = |name: &str| (name == "EVENTSOURCING_CIPHER_KEY").then(|| "c2hvcnQ=".to_owned());
    assert!(matches!(
        Application::builder().transcoders_from(bad_key),
        Err(ApplicationError::Config(_))
    ));
    let bad_codec = |name: &str| (name == "EVENTSOURCING_COMPRESSION").then(|| "lzma".to_owned());
    assert!(matches!(
        Application::builder().transcoders_from(bad_codec),
        Err(ApplicationError::Config(_))
    ));
}

/// Declares one `#[test]` per evolution scenario for a backend constructor
/// `fn() -> Option<Arc<dyn Storage>>`.
#[macro_export]
macro_rules! evolution_scenarios {
    // A store without a global log (Cassandra): the scenarios that need none. Migration
    // scans the log, so it is left out there.
    ($fresh:path, without_global_log) => {
        $crate::evolution_scenarios!(@tests $fresh;
            snapshot_at_current_and_given_version, automatic_snapshots, snapshots_bound_replay,
            time_travel, upcast_events_across_three_versions,
            upcast_snapshots_across_three_versions, undecodable_snapshots_fall_back_to_replay,
            aliases_resolve_on_read, delete_removes_snapshots, transcoded_events_and_snapshots,
            snapshots_never_outlive_their_events);
    };
    ($fresh:path) => {
        $crate::evolution_scenarios!(@tests $fresh;
            snapshot_at_current_and_given_version, automatic_snapshots, snapshots_bound_replay,
            time_travel, upcast_events_across_three_versions,
            upcast_snapshots_across_three_versions, undecodable_snapshots_fall_back_to_replay,
            aliases_resolve_on_read, migration_resumes_and_verifies, delete_removes_snapshots,
            transcoded_events_and_snapshots, reencode_with_new_transcoders,
            snapshots_never_outlive_their_events, migration_stops_with_a_cursor_and_resumes,
            migration_invalidates_snapshots);
    };
    (@tests $fresh:path; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                if let Some(store) = $fresh() {
                    $crate::evolution::$scenario(store);
                }
            }
        )*
    };
}

/// Re-encoding a store: events written as plain JSON are compressed and encrypted in place
/// by a migration that reads with the old transcoders and writes with the new ones; then the
/// key is rotated the same way.
pub fn reencode_with_new_transcoders(store: Store) {
    let plain = app(&store);
    let ledger = ledger_with(&plain, 5, 5);
    let stream = ledger.id().to_string();
    let first = first_position(&store, &stream);
    let with_key = |key: &CipherKey| {
        Application::builder()
            .storage(Arc::clone(&store))
            .transcoder(Arc::new(Compression::new()))
            .transcoder(Arc::new(Encryption::new(key)))
            .build()
            .expect("build")
    };
    let old_key = CipherKey::generate().expect("key");
    let encrypted = with_key(&old_key);
    let progress = Migration::upcast(encrypted.event_store())
        .reading_with(&Mapper::new())
        .run(first)
        .expect("encrypt in place");
    assert!(progress.rewritten >= 6);
    let raw = store
        .select_events(&stream, &EventQuery::all())
        .expect("select");
    assert!(raw
        .iter()
        .all(|e| e.payload[0] == 0x02 && !e.payload.starts_with(b"{")));
    assert_eq!(
        encrypted
            .repository::<Ledger>()
            .get(ledger.id())
            .expect("get")
            .balance,
        triangle(5)
    );
    let verification = Migration::upcast(encrypted.event_store())
        .verify()
        .expect("verify");
    assert_eq!(
        ours(
            &verification.undecodable,
            &HashSet::from([stream.clone()]),
            |(e, _)| &e.stream_id
        ),
        0
    );

    // Rotate the key: read with the old, write with the new.
    let new_key = CipherKey::generate().expect("key");
    let rotated = with_key(&new_key);
    let old_mapper = Mapper::new()
        .with_transcoder(Arc::new(Compression::new()))
        .with_transcoder(Arc::new(Encryption::new(&old_key)));
    Migration::upcast(rotated.event_store())
        .reading_with(&old_mapper)
        .run(first)
        .expect("rotate");
    assert_eq!(
        rotated
            .repository::<Ledger>()
            .get(ledger.id())
            .expect("get")
            .balance,
        triangle(5)
    );
    assert!(encrypted.repository::<Ledger>().get(ledger.id()).is_err());
}
