//! Process applications with batched commits (`ProcessApplication::batch_commits`): one
//! transaction and one tracking record per page, the same downstream events as one commit
//! per event, and errors still reported for the event at fault; on memory, SQLite and
//! PostgreSQL.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use eventsourcing::persistence::{
    AggregateRecorder, ApplicationRecorder, BoxError, EventQuery, MemoryRecorder,
    NotificationQuery, PersistenceError, ProcessRecorder, SnapshotRecorder, Storage, StoredEvent,
    StoredEventRef, StoredSnapshot, StreamAppend, Tracking,
};
use eventsourcing::prelude::*;
use eventsourcing::system::SystemError;
use eventsourcing_examples::shop::{place_order, OrderCommands, Payment, PaymentEvent, Payments};
use eventsourcing_tests::{fresh_postgres, fresh_sqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store that counts `append_tracked` calls (one per transaction with a tracking record).
struct Counting {
    inner: Arc<dyn Storage>,
    tracked: AtomicUsize,
}

impl Counting {
    fn new(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            tracked: AtomicUsize::new(0),
        })
    }

    fn commits(&self) -> usize {
        self.tracked.load(Ordering::SeqCst)
    }
}

impl AggregateRecorder for Counting {
    fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, PersistenceError> {
        self.inner.append(batch)
    }
    fn select_events(
        &self,
        stream_id: &str,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        self.inner.select_events(stream_id, query)
    }
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.inner.for_each_event(stream_id, query, visit)
    }
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.inner.event_by_id(event_id)
    }
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.inner.delete_stream(stream_id)
    }
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.inner.update_events(events)
    }
}

impl ApplicationRecorder for Counting {
    fn select_notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        self.inner.select_notifications(query)
    }
    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.inner.max_position()
    }
}

impl ProcessRecorder for Counting {
    fn append_tracked(
        &self,
        batch: &[StreamAppend],
        tracking: &Tracking,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.tracked.fetch_add(1, Ordering::SeqCst);
        self.inner.append_tracked(batch, tracking)
    }
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.inner.max_tracking_position(upstream)
    }
}

impl SnapshotRecorder for Counting {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.inner.put_snapshot(snapshot)
    }
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        self.inner.latest_snapshot(stream_id, at_most_version)
    }
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.inner.delete_snapshots(stream_id)
    }
}

fn app(storage: Arc<dyn Storage>) -> Result<Application, ApplicationError> {
    Application::builder().storage(storage).build()
}

type MakeStore = Box<dyn Fn() -> Arc<dyn Storage>>;

fn backends(test: &str) -> Vec<(&'static str, MakeStore)> {
    let mut backends: Vec<(&'static str, MakeStore)> = vec![
        ("memory", Box::new(|| Arc::new(MemoryRecorder::new()))),
        ("sqlite", Box::new(|| fresh_sqlite("system-batch"))),
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

/// Places `count` orders and cancels those whose number is in `cancel`.
fn orders(app: &Application, count: u64, cancel: &[u64]) -> Result<(), Box<dyn std::error::Error>> {
    let mut placed = Vec::new();
    for n in 1..=count {
        let mut order = place_order("customer", n * 100, "2024-05-01")?;
        app.save(&mut order)?;
        placed.push(order);
    }
    for n in cancel {
        let order = &mut placed[usize::try_from(*n)? - 1];
        order.cancel_once()?;
        app.save(order)?;
    }
    Ok(())
}

fn positions(app: &Application) -> Result<Vec<u64>, ApplicationError> {
    Ok(app
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .filter_map(|e| e.position)
        .collect())
}

/// What the downstream log holds, ignoring ids and positions: stream, version, topic,
/// payload and causation, in log order.
type Summary = Vec<(String, u64, String, Vec<u8>, Option<Uuid>)>;

fn summary(app: &Application) -> Result<Summary, ApplicationError> {
    Ok(app
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .map(|e| {
            (
                e.stream_id,
                e.version,
                e.topic,
                e.payload,
                e.metadata.causation_id,
            )
        })
        .collect())
}

/// Runs `Payments` over `upstream`, batched or not; returns the downstream application and
/// how many transactions it committed.
fn follow(
    upstream: &Application,
    store: Arc<dyn Storage>,
    batched: bool,
) -> Result<(Application, usize), Box<dyn std::error::Error>> {
    let counting = Counting::new(store);
    let downstream = app(counting.clone())?;
    let mut process = ProcessApplication::new(
        downstream.clone(),
        Upstream::application("orders", upstream),
        Payments,
    )
    .batch_commits(batched);
    process.run_until_caught_up()?;
    assert_eq!(
        process.position()?,
        *positions(upstream)?.last().expect("events")
    );
    Ok((downstream, counting.commits()))
}

#[test]
fn a_batched_page_commits_once_and_writes_what_per_event_commits_write() -> TestResult {
    for (backend, make) in
        backends("a_batched_page_commits_once_and_writes_what_per_event_commits_write")
    {
        let upstream = app(make())?;
        orders(&upstream, 12, &[])?;
        let (one_by_one, commits) = follow(&upstream, make(), false)?;
        assert_eq!(commits, 12, "{backend}");
        let (batched, commits) = follow(&upstream, make(), true)?;
        assert_eq!(
            commits, 1,
            "{backend}: one transaction, one tracking record"
        );
        assert_eq!(summary(&batched)?, summary(&one_by_one)?, "{backend}");
        assert_eq!(summary(&batched)?.len(), 12, "{backend}");
    }
    Ok(())
}

#[test]
fn an_aggregate_touched_twice_in_a_page_sees_the_earlier_effects() -> TestResult {
    for (backend, make) in backends("an_aggregate_touched_twice_in_a_page_sees_the_earlier_effects")
    {
        // Orders 1..6 placed, then 2 and 5 cancelled, all in one page: the refunds load
        // payments charged earlier in the same page.
        let upstream = app(make())?;
        orders(&upstream, 6, &[2, 5])?;
        let (one_by_one, commits) = follow(&upstream, make(), false)?;
        assert_eq!(commits, 8, "{backend}");
        let (batched, commits) = follow(&upstream, make(), true)?;
        // The page splits before the first refund: charges in one transaction, refunds in
        // another.
        assert_eq!(commits, 2, "{backend}");
        assert_eq!(summary(&batched)?, summary(&one_by_one)?, "{backend}");
        let refunded: Vec<bool> = summary(&batched)?
            .iter()
            .map(|(_, version, ..)| *version == 2)
            .collect();
        assert_eq!(refunded.iter().filter(|r| **r).count(), 2, "{backend}");
    }
    Ok(())
}

/// Charges like `Payments`, but fails on one upstream position while `fail_at` is set.
struct Flaky {
    fail_at: Option<u64>,
}

impl Policy for Flaky {
    fn topics(&self) -> Vec<String> {
        Payments.topics()
    }

    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        Payments.process(event, ctx)?;
        if self.fail_at == Some(event.position()) {
            return Err("payment gateway unavailable".into());
        }
        Ok(())
    }
}

#[test]
fn a_policy_error_mid_page_commits_the_events_before_it_in_one_batch() -> TestResult {
    for (backend, make) in
        backends("a_policy_error_mid_page_commits_the_events_before_it_in_one_batch")
    {
        let upstream = app(make())?;
        orders(&upstream, 6, &[])?;
        let up = positions(&upstream)?;
        let counting = Counting::new(make());
        let downstream = app(counting.clone())?;
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            Flaky {
                fail_at: Some(up[3]),
            },
        )
        .named("payments")
        .batch_commits(true);

        let error = process.pull().expect_err("the fourth event fails");
        match &error {
            SystemError::Policy {
                process, position, ..
            } => assert_eq!(
                (process.as_str(), *position),
                ("payments", up[3]),
                "{backend}"
            ),
            other => panic!("{backend}: unexpected error {other}"),
        }
        assert_eq!(counting.commits(), 1, "{backend}: events 1..3 in one batch");
        assert_eq!(process.position()?, up[2], "{backend}");
        assert_eq!(positions(&downstream)?.len(), 3, "{backend}");

        // Still failing: nothing more is written.
        assert!(process.pull().is_err(), "{backend}");
        assert_eq!(positions(&downstream)?.len(), 3, "{backend}");

        process.policy_mut().fail_at = None;
        let before = counting.commits();
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        assert_eq!(
            counting.commits(),
            before + 1,
            "{backend}: the rest in one batch"
        );
        assert_eq!(process.position()?, up[5], "{backend}");
        let causes: Vec<Option<Uuid>> = summary(&downstream)?.into_iter().map(|s| s.4).collect();
        let ids: Vec<Option<Uuid>> = upstream
            .notification_log()
            .select(1, usize::MAX)?
            .into_iter()
            .map(|e| Some(e.metadata.event_id))
            .collect();
        assert_eq!(causes, ids, "{backend}: each event once, in order");
    }
    Ok(())
}

#[test]
fn a_conflict_in_a_batch_falls_back_to_one_event_at_a_time_and_names_the_event() -> TestResult {
    let upstream = Application::in_memory();
    orders(&upstream, 3, &[])?;
    let up = upstream.notification_log().select(1, 10)?;
    let payments = Application::in_memory();
    // Someone else already wrote a payment with the second order's id.
    let mut taken = eventsourcing::Aggregate::<Payment>::create_with_id(
        up[1].stream_id.parse()?,
        PaymentEvent::Charged {
            amount_cents: 1,
            day: "2024-05-01".into(),
        },
    )?;
    payments.save(&mut taken)?;
    let mut process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &upstream),
        Payments,
    )
    .batch_commits(true);
    let error = process.run_until_caught_up().expect_err("conflict");
    assert!(
        matches!(error, SystemError::Conflict { position: 2, .. }),
        "{error}"
    );
    // The first event committed on its own; nothing of the second or third.
    assert_eq!(process.position()?, 1);
    assert_eq!(payments.notification_log().max_position()?, 2);
    Ok(())
}

/// Catch-up time for 2,000 upstream events on SQLite files, one commit per event against one
/// per page: `cargo test -p eventsourcing-tests --release --test system_batch -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement"]
fn catch_up_timing_on_sqlite_files() -> TestResult {
    let upstream = app(fresh_sqlite("system-batch-timing"))?;
    let mut events = Vec::new();
    for n in 1..=2_000 {
        events.push(place_order("customer", n, "2024-05-01")?);
    }
    for chunk in events.chunks_mut(100) {
        upstream.save(chunk.iter_mut().collect::<Vec<_>>())?;
    }
    for batched in [false, true] {
        let started = std::time::Instant::now();
        let (downstream, commits) =
            follow(&upstream, fresh_sqlite("system-batch-timing"), batched)?;
        println!(
            "batched={batched}: {} downstream events, {commits} commits, {:?}",
            positions(&downstream)?.len(),
            started.elapsed()
        );
    }
    Ok(())
}
