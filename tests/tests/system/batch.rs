//! Process applications with batched commits (`ProcessApplication::batch_commits`): one
//! transaction and one tracking record per page, the same downstream events as one commit
//! per event, and errors still reported for the event at fault; on memory, SQLite and
//! PostgreSQL.

use std::sync::Arc;

use eventsourcing::persistence::{BoxError, Storage};
use eventsourcing::prelude::*;
use eventsourcing::system::SystemError;
use eventsourcing_examples::shop::{place_order, OrderCommands, Payment, PaymentEvent, Payments};
use eventsourcing_tests::support::CountingStorage;
use eventsourcing_tests::{backends, fresh_sqlite};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn app(storage: Arc<dyn Storage>) -> Result<Application, ApplicationError> {
    Application::builder().storage(storage).build()
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
) -> Result<(Application, u64), Box<dyn std::error::Error>> {
    let counting = Arc::new(CountingStorage::new(store));
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
    Ok((downstream, counting.tracked_appends()))
}

/// Per-event commits read the tracked position once a page, not once an event (each commit's
/// tracking guard is what refuses an event processed meanwhile by another instance).
#[test]
fn per_event_commits_read_the_tracked_position_once_a_page() -> TestResult {
    for (backend, make) in backends("per_event_commits_read_the_tracked_position_once_a_page") {
        let upstream = app(make())?;
        orders(&upstream, 12, &[])?;
        let counting = Arc::new(CountingStorage::new(make()));
        let downstream = app(counting.clone())?;
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            Payments,
        );
        counting.reset();
        assert_eq!(process.pull()?, 12, "{backend}: one page");
        assert_eq!(counting.tracked_appends(), 12, "{backend}");
        assert_eq!(
            counting.tracking_reads(),
            1,
            "{backend}: one read of the tracked position for the page"
        );
    }
    Ok(())
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
        let counting = Arc::new(CountingStorage::new(make()));
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
        assert_eq!(
            counting.tracked_appends(),
            1,
            "{backend}: events 1..3 in one batch"
        );
        assert_eq!(process.position()?, up[2], "{backend}");
        assert_eq!(positions(&downstream)?.len(), 3, "{backend}");

        // Still failing: nothing more is written.
        assert!(process.pull().is_err(), "{backend}");
        assert_eq!(positions(&downstream)?.len(), 3, "{backend}");

        process.policy_mut().fail_at = None;
        let before = counting.tracked_appends();
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        assert_eq!(
            counting.tracked_appends(),
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
    let upstream = Application::in_memory().expect("in-memory application");
    orders(&upstream, 3, &[])?;
    let up = upstream.notification_log().select(1, 10)?;
    let payments = Application::in_memory().expect("in-memory application");
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
/// per page: `cargo test -p eventsourcing-tests --release --test system -- --ignored --nocapture`.
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

/// Answers each upstream event with a new dog (a random id: nothing downstream rejects a
/// second run of the same event), slowly, so that two instances' pages overlap in time.
struct SlowKennel;

impl eventsourcing::system::Policy for SlowKennel {
    fn process(
        &mut self,
        _event: &eventsourcing::system::Notification<'_>,
        ctx: &mut eventsourcing::system::ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        use eventsourcing_examples::dog_school::{Dog, DogEvent};
        std::thread::sleep(std::time::Duration::from_millis(10));
        let mut dog = ctx.create::<Dog>(DogEvent::Registered { name: "Rex".into() })?;
        ctx.save(&mut dog)?;
        Ok(())
    }
}

/// Two instances of one process application, batching pages of different sizes over one
/// upstream and one downstream store at the same time: every upstream event is applied once.
/// (A batch's tracking record covers its whole page: a commit whose page reaches back to a
/// position another instance already tracked is refused, and its events are retried one by
/// one, skipping the processed ones.)
#[test]
fn two_batching_instances_apply_each_event_once() -> TestResult {
    for (backend, make) in backends("two_batching_instances_apply_each_event_once") {
        let upstream = app(make())?;
        orders(&upstream, 12, &[])?;
        let downstream = app(make())?;
        let run = |page: usize| {
            let (upstream, downstream) = (upstream.clone(), downstream.clone());
            std::thread::spawn(move || -> Result<u64, SystemError> {
                ProcessApplication::new(
                    downstream,
                    Upstream::application("orders", &upstream),
                    SlowKennel,
                )
                .batch_commits(true)
                .page_size(page)
                .run_until_caught_up()
            })
        };
        let (a, b) = (run(7), run(5));
        a.join().expect("instance a")?;
        b.join().expect("instance b")?;
        assert_eq!(
            positions(&downstream)?.len(),
            12,
            "{backend}: one dog per upstream event"
        );
    }
    Ok(())
}
