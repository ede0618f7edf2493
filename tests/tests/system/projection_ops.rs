//! Projection operations: pause and resume (from another thread), reset, and a versioned
//! rebuild side by side, with each version's read model in its own SQLite tables and the
//! version readers see in a pointer row switched in one transaction.

use std::sync::{Arc, Mutex};

use eventsourcing::persistence::BoxError;
use eventsourcing::prelude::*;
use eventsourcing::system::{
    DurableProjection, DurableProjector, Notification, Projector, SideBySide, VersionedProjection,
};
use eventsourcing_examples::competing::{Ticker, TickerCommands};
use eventsourcing_tests::competing::write_tickers;
use eventsourcing_tests::support::TempDb;
use rusqlite::{params, Connection, OptionalExtension};

use crate::Count;

type TestResult = Result<(), BoxError>;

#[test]
fn a_paused_projector_reads_nothing_until_resumed_from_another_thread() -> TestResult {
    let app = Application::in_memory()?;
    let _ = write_tickers(&app, 2, 1);
    let mut projector = Projector::new(Count::default(), Upstream::application("t", &app));
    projector.run_until_caught_up()?;
    assert_eq!(projector.projection().0, 4);
    let pause = projector.pause_handle();
    std::thread::spawn(move || pause.pause())
        .join()
        .map_err(|_| "panicked")?;
    let _ = write_tickers(&app, 3, 1);
    assert_eq!(projector.run_until_caught_up()?, 0, "paused: nothing read");
    assert_eq!((projector.projection().0, projector.position()), (4, 4));
    projector.pause_handle().resume();
    assert_eq!(projector.run_until_caught_up()?, 6);
    assert_eq!(projector.projection().0, 10);
    projector.reset();
    assert_eq!((projector.projection().0, projector.position()), (0, 0));
    assert_eq!(
        projector.run_until_caught_up()?,
        10,
        "after a reset: everything again"
    );
    Ok(())
}

/// Ticks per ticker, in tables `ticks_v<N>` of one SQLite file, the position in
/// `positions`; version 2 also counts the starts. The version readers see is the row of
/// `served`.
struct Ticks {
    conn: Connection,
    version: u32,
}

impl Ticks {
    fn open(path: &std::path::Path, version: u32) -> Result<Self, BoxError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS ticks_v{version} (ticker TEXT PRIMARY KEY, n INTEGER NOT NULL); \
             CREATE TABLE IF NOT EXISTS positions (version INTEGER PRIMARY KEY, position INTEGER NOT NULL); \
             CREATE TABLE IF NOT EXISTS served (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL); \
             INSERT OR IGNORE INTO served VALUES (1, 1);"
        ))?;
        Ok(Self { conn, version })
    }

    fn total(&self) -> Result<i64, BoxError> {
        Ok(self.conn.query_row(
            &format!("SELECT coalesce(sum(n), 0) FROM ticks_v{}", self.version),
            [],
            |r| r.get(0),
        )?)
    }
}

/// What a reader sees: the total of the version the pointer row names.
fn read_served(path: &std::path::Path) -> Result<(u32, i64), BoxError> {
    let conn = Connection::open(path)?;
    let version: u32 = conn.query_row("SELECT version FROM served", [], |r| r.get(0))?;
    let total = conn.query_row(
        &format!("SELECT coalesce(sum(n), 0) FROM ticks_v{version}"),
        [],
        |r| r.get(0),
    )?;
    Ok((version, total))
}

impl DurableProjection for Ticks {
    fn name(&self) -> &str {
        "ticks"
    }
    fn position(&self) -> Result<u64, BoxError> {
        let position: Option<i64> = self
            .conn
            .query_row(
                "SELECT position FROM positions WHERE version = ?1",
                [self.version],
                |r| r.get(0),
            )
            .optional()?;
        Ok(u64::try_from(position.unwrap_or(0))?)
    }
    fn apply_batch(&mut self, events: &[Notification<'_>], position: u64) -> Result<(), BoxError> {
        let tx = self.conn.transaction()?;
        for event in events {
            let counts = event.topic.ends_with("Ticked") || self.version >= 2;
            if counts {
                tx.execute(
                    &format!(
                        "INSERT INTO ticks_v{} VALUES (?1, 1) ON CONFLICT (ticker) DO UPDATE SET n = n + 1",
                        self.version
                    ),
                    [&event.stream_id],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO positions VALUES (?1, ?2) ON CONFLICT (version) DO UPDATE SET position = ?2",
            params![self.version, i64::try_from(position)?],
        )?;
        tx.commit()?;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        let tx = self.conn.transaction()?;
        tx.execute(&format!("DELETE FROM ticks_v{}", self.version), [])?;
        tx.execute("DELETE FROM positions WHERE version = ?1", [self.version])?;
        tx.commit()?;
        Ok(())
    }
}

impl VersionedProjection for Ticks {
    fn version(&self) -> u32 {
        self.version
    }
    fn drop_version(&mut self) -> Result<(), BoxError> {
        let tx = self.conn.transaction()?;
        tx.execute(&format!("DROP TABLE IF EXISTS ticks_v{}", self.version), [])?;
        tx.execute("DELETE FROM positions WHERE version = ?1", [self.version])?;
        tx.commit()?;
        Ok(())
    }
}

/// The switch: one UPDATE of the pointer row, after checking what it switches to.
fn switch(
    path: std::path::PathBuf,
    seen: Arc<Mutex<Vec<(u32, u64)>>>,
) -> impl FnMut(&Ticks) -> Result<(), BoxError> + Send {
    move |next: &Ticks| {
        seen.lock()
            .map_err(|e| e.to_string())?
            .push((next.version, next.position()?));
        let conn = Connection::open(&path)?;
        conn.execute("UPDATE served SET version = ?1", [next.version])?;
        Ok(())
    }
}

#[test]
fn a_new_version_is_built_beside_the_old_one_and_switched_once_caught_up() -> TestResult {
    let app = Application::in_memory()?;
    let db = TempDb::new("side-by-side");
    let path = db.path().to_path_buf();
    let _ = write_tickers(&app, 5, 3); // 20 events: 5 starts, 15 ticks
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ticks = SideBySide::new(
        Ticks::open(&path, 1)?,
        Upstream::application("tickers", &app),
        switch(path.clone(), Arc::clone(&seen)),
    )
    .page_size(4);
    ticks.run_until_caught_up()?;
    assert_eq!(read_served(&path)?, (1, 15));

    ticks.start_rebuild(Ticks::open(&path, 2)?)?;
    // While version 2 is built page by page, version 1 keeps serving, whole, and follows new
    // events.
    let _ = write_tickers(&app, 2, 2); // 6 more: 2 starts, 4 ticks
    let mut rounds = 0;
    while ticks.building().is_some() {
        let (served, total) = read_served(&path)?;
        assert_eq!(served, 1, "the old version serves until the switch");
        // Version 1 reads its pages too: between the 15 ticks it had and the 19 there are.
        assert!((15..=19).contains(&total), "version 1 serves: {total}");
        ticks.pull()?;
        rounds += 1;
        assert!(rounds < 1000, "the rebuild finishes");
    }
    assert!(
        rounds >= 5,
        "built page by page while version 1 served: {rounds} rounds"
    );
    // Switched exactly once, when version 2 had reached version 1's position (26).
    assert_eq!(*seen.lock().map_err(|e| e.to_string())?, [(2, 26)]);
    assert_eq!(
        read_served(&path)?,
        (2, 26),
        "version 2 counts starts and ticks"
    );
    assert_eq!(ticks.serving().version, 2);
    let conn = Connection::open(&path)?;
    let old: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE name = 'ticks_v1'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    assert_eq!(old, None, "version 1 dropped after the switch");
    // And it follows on.
    let mut ticker = Ticker::start();
    ticker.tick();
    app.save(&mut ticker)?;
    ticks.run_until_caught_up()?;
    assert_eq!(read_served(&path)?, (2, 28));
    Ok(())
}

#[test]
fn a_failed_switch_keeps_the_old_version_and_a_rebuild_resumes_or_is_cancelled() -> TestResult {
    let app = Application::in_memory()?;
    let db = TempDb::new("side-by-side-fail");
    let path = db.path().to_path_buf();
    let _ = write_tickers(&app, 4, 2);
    let fail = Arc::new(Mutex::new(true));
    let failing = Arc::clone(&fail);
    let inner_path = path.clone();
    let mut ticks = SideBySide::new(
        Ticks::open(&path, 1)?,
        Upstream::application("tickers", &app),
        move |next: &Ticks| {
            if *failing.lock().map_err(|e| e.to_string())? {
                return Err("the pointer's store is down".into());
            }
            let conn = Connection::open(&inner_path)?;
            conn.execute("UPDATE served SET version = ?1", [next.version])?;
            Ok(())
        },
    );
    ticks.run_until_caught_up()?;
    let same = ticks.start_rebuild(Ticks::open(&path, 1)?);
    assert!(
        same.is_err_and(|e| e.to_string().contains("serving version")),
        "the serving version cannot be rebuilt in place"
    );
    assert_eq!(read_served(&path)?, (1, 8), "and it was not reset");
    ticks.start_rebuild(Ticks::open(&path, 2)?)?;
    let failed = ticks.run_until_caught_up();
    assert!(
        failed.is_err_and(|e| e.to_string().contains("the pointer's store is down")),
        "the switch fails"
    );
    assert_eq!(read_served(&path)?, (1, 8), "the old version still serves");
    assert!(ticks.building().is_some(), "the new version is kept, built");
    // Tried again at the next pull, once the switch works.
    *fail.lock().map_err(|e| e.to_string())? = false;
    ticks.run_until_caught_up()?;
    assert_eq!(read_served(&path)?, (2, 12), "switched on the retry");
    assert!(ticks.building().is_none());
    let _ = write_tickers(&app, 1, 1);

    // Version 3 half built, then a restart: it resumes from its own committed position.
    drop(ticks);
    let mut restarted = SideBySide::new(
        Ticks::open(&path, 2)?,
        Upstream::application("tickers", &app),
        |_: &Ticks| Ok(()),
    )
    .page_size(4);
    let mut half = DurableProjector::new(
        Ticks::open(&path, 3)?,
        Upstream::application("tickers", &app),
    )
    .page_size(4);
    half.reset()?;
    half.pull()?;
    assert_eq!(half.position()?, 4, "version 3 half built");
    restarted.resume_rebuild(half.into_projection())?;
    restarted.pull()?;
    assert_eq!(
        restarted
            .building()
            .map(|b| b.position().unwrap_or_default()),
        Some(8),
        "resumed from position 4, not from the start"
    );
    restarted.cancel_rebuild()?;
    assert!(restarted.building().is_none());
    let conn = Connection::open(&path)?;
    let dropped: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE name = 'ticks_v3'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    assert_eq!(dropped, None, "a cancelled rebuild's storage is dropped");
    assert_eq!(read_served(&path)?, (2, 14));

    // The durable projector alone: reset without replay, then a pull rebuilds.
    let mut projector = DurableProjector::new(
        Ticks::open(&path, 1)?,
        Upstream::application("tickers", &app),
    );
    projector.reset()?;
    assert_eq!(
        (projector.position()?, projector.projection().total()?),
        (0, 0)
    );
    projector.run_until_caught_up()?;
    assert_eq!(projector.projection().total()?, 9);
    Ok(())
}
