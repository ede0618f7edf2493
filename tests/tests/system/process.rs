//! Process applications: exactly-once effects under retries and failures, resuming after a
//! restart, causation and correlation ids, and the background runner; on memory, SQLite and
//! PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use eventsourcing::persistence::{BoxError, SqliteConfig, SqliteRecorder, Storage};
use eventsourcing::prelude::*;
use eventsourcing::system::{Processed, SystemError};
use eventsourcing::Metadata;
use eventsourcing_examples::shop::{
    place_order, Order, OrderEvent, Payment, PaymentEvent, Payments,
};
use eventsourcing_tests::backends;
use eventsourcing_tests::support::TempDb;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn app(storage: Arc<dyn Storage>) -> Result<Application, ApplicationError> {
    Application::builder().storage(storage).build()
}

fn place(orders: &Application, count: u64) -> Result<Vec<Uuid>, Box<dyn std::error::Error>> {
    let mut ids = Vec::new();
    for n in 1..=count {
        let mut order = place_order("customer", n * 100, "2024-05-01")?;
        orders.save(&mut order)?;
        ids.push(order.id());
    }
    Ok(ids)
}

/// The downstream events' causation ids, in log order.
fn causes(app: &Application) -> Result<Vec<Option<Uuid>>, ApplicationError> {
    Ok(app
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .map(|e| e.metadata.causation_id)
        .collect())
}

/// The positions of an application's events (dense on some stores, not on PostgreSQL).
fn positions(app: &Application) -> Result<Vec<u64>, ApplicationError> {
    Ok(app
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .filter_map(|e| e.position)
        .collect())
}

/// How many events an application holds.
fn count(app: &Application) -> Result<usize, ApplicationError> {
    Ok(positions(app)?.len())
}

fn upstream_ids(app: &Application) -> Result<Vec<Option<Uuid>>, ApplicationError> {
    Ok(app
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .map(|e| Some(e.metadata.event_id))
        .collect())
}

#[test]
fn processing_the_same_upstream_position_twice_writes_once() -> TestResult {
    for (backend, make) in backends("processing_the_same_upstream_position_twice_writes_once") {
        let orders = app(make())?;
        let payments = app(make())?;
        place(&orders, 3)?;
        let mut process = ProcessApplication::new(
            payments.clone(),
            Upstream::application("orders", &orders),
            Payments,
        );
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        let upstream = positions(&orders)?;
        assert_eq!(process.position()?, upstream[2], "{backend}");

        // Retry every upstream event by hand: each is already tracked, nothing is written.
        for event in orders.notification_log().select(1, 10)? {
            assert_eq!(
                process.process(&event)?,
                Processed::AlreadyTracked,
                "{backend}"
            );
        }
        // A second instance over the same stores (a restart, or a competing worker) finds
        // nothing to do.
        let mut twin = ProcessApplication::new(
            payments.clone(),
            Upstream::application("orders", &orders),
            Payments,
        );
        assert_eq!(twin.run_until_caught_up()?, 0, "{backend}");
        assert_eq!(count(&payments)?, 3, "{backend}");
        assert_eq!(causes(&payments)?, upstream_ids(&orders)?, "{backend}");
    }
    Ok(())
}

/// Fails on one upstream position while `fail_at` is set, after saving its payment in the
/// context (which must then not be written).
struct Flaky {
    fail_at: Option<u64>,
}

impl Policy for Flaky {
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
fn a_policy_failure_mid_page_writes_nothing_for_that_event_and_is_retried() -> TestResult {
    for (backend, make) in
        backends("a_policy_failure_mid_page_writes_nothing_for_that_event_and_is_retried")
    {
        let orders = app(make())?;
        let payments = app(make())?;
        place(&orders, 5)?;
        let upstream = positions(&orders)?;
        let mut process = ProcessApplication::new(
            payments.clone(),
            Upstream::application("orders", &orders),
            Flaky {
                fail_at: Some(upstream[2]),
            },
        )
        .named("payments");

        let error = process
            .run_until_caught_up()
            .expect_err("the third event fails");
        match &error {
            SystemError::Policy {
                process, position, ..
            } => {
                assert_eq!(
                    (process.as_str(), *position),
                    ("payments", upstream[2]),
                    "{backend}"
                );
            }
            other => panic!("{backend}: unexpected error {other}"),
        }
        assert_eq!(
            process.position()?,
            upstream[1],
            "{backend}: events before the failure committed"
        );
        assert_eq!(count(&payments)?, 2, "{backend}");

        // Still failing: still nothing more.
        assert!(process.pull().is_err(), "{backend}");
        assert_eq!(count(&payments)?, 2, "{backend}");

        // The gateway is back: the failed event and the rest of the page go through, once.
        process.policy_mut().fail_at = None;
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        assert_eq!(causes(&payments)?, upstream_ids(&orders)?, "{backend}");
    }
    Ok(())
}

#[test]
fn a_conflicting_write_commits_nothing_and_the_event_is_retried() -> TestResult {
    let orders = Application::in_memory().expect("in-memory application");
    let payments = Application::in_memory().expect("in-memory application");
    let ids = place(&orders, 1)?;
    // Someone else already wrote a payment with the order's id: the policy's creation
    // conflicts, and neither the payment nor the tracking record is written.
    payments.save(&mut Payment::charge(1, "2024-05-01".into()))?;
    let mut squatter = Payment::charge(1, "2024-05-01".into());
    let mut taken = eventsourcing::Aggregate::<Payment>::create_with_id(
        ids[0],
        PaymentEvent::Charged {
            amount_cents: 1,
            day: "2024-05-01".into(),
        },
    )?;
    payments.save((&mut squatter, &mut taken))?;
    let mut process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    );
    let error = process.run_until_caught_up().expect_err("conflict");
    assert!(
        matches!(error, SystemError::Conflict { position: 1, .. }),
        "{error}"
    );
    assert_eq!(process.position()?, 0);
    assert_eq!(payments.notification_log().max_position()?, 3);
    Ok(())
}

#[test]
fn causation_and_correlation_ids_are_propagated() -> TestResult {
    let orders = Application::in_memory().expect("in-memory application");
    let payments = Application::in_memory().expect("in-memory application");
    // The order event belongs to a conversation started elsewhere, with user metadata.
    let conversation = Uuid::now_v7();
    let mut cause = Metadata::new();
    cause.correlation_id = Some(conversation);
    cause.user.insert("user".into(), "alice".into());
    let mut order = eventsourcing::Aggregate::<Order>::create_in_context(
        Uuid::now_v7(),
        OrderEvent::Placed {
            customer: "alice".into(),
            amount_cents: 500,
            day: "2024-05-01".into(),
        },
        eventsourcing::EventContext::caused_by(&cause),
    )?;
    orders.save(&mut order)?;
    let mut plain = place_order("bob", 700, "2024-05-01")?;
    orders.save(&mut plain)?;

    let mut process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    );
    process.run_until_caught_up()?;

    let upstream = orders.notification_log().select(1, 10)?;
    let downstream = payments.notification_log().select(1, 10)?;
    assert_eq!(downstream.len(), 2);
    // Within a conversation: caused by the order event, same correlation, user values kept.
    assert_eq!(
        downstream[0].metadata.causation_id,
        Some(upstream[0].metadata.event_id)
    );
    assert_eq!(downstream[0].metadata.correlation_id, Some(conversation));
    assert_eq!(
        downstream[0].metadata.user.get("user").map(String::as_str),
        Some("alice")
    );
    // Starting a conversation: the order event's id is the correlation id.
    assert_eq!(
        downstream[1].metadata.causation_id,
        Some(upstream[1].metadata.event_id)
    );
    assert_eq!(
        downstream[1].metadata.correlation_id,
        Some(upstream[1].metadata.event_id)
    );
    Ok(())
}

#[test]
fn a_generated_factory_in_a_policy_gets_the_causation_too() {
    fn mirror(event: &Notification<'_>, ctx: &mut ProcessingContext<'_>) -> Result<(), BoxError> {
        if event.is::<OrderEvent>() {
            ctx.save(&mut Payment::charge(1, "d".into()))?;
        }
        Ok(())
    }
    let processing = eventsourcing::testing::History::new()
        .aggregate(&mut Order::place("a".into(), 1, "d".into()))
        .when_processed_by(mirror);
    let downstream = processing.events();
    assert_eq!(downstream.len(), 1);
    assert!(downstream[0].metadata.causation_id.is_some());
    assert_eq!(
        downstream[0].metadata.causation_id,
        downstream[0].metadata.correlation_id
    );
}

fn open_sqlite(db: &TempDb) -> Result<Application, Box<dyn std::error::Error>> {
    let recorder = SqliteRecorder::open(SqliteConfig::new(db.path()))?;
    Ok(app(Arc::new(recorder))?)
}

#[test]
fn resumes_after_a_restart_on_sqlite_files_without_duplicates_or_gaps() -> TestResult {
    let orders_db = TempDb::new("system-orders");
    let payments_db = TempDb::new("system-payments");
    {
        let orders = open_sqlite(&orders_db)?;
        let payments = open_sqlite(&payments_db)?;
        place(&orders, 5)?;
        let mut process =
            ProcessApplication::new(payments, Upstream::application("orders", &orders), Payments)
                .page_size(3);
        assert_eq!(process.pull()?, 3);
        // Everything is dropped here: connections close, nothing is kept in memory.
    }
    let orders = open_sqlite(&orders_db)?;
    let payments = open_sqlite(&payments_db)?;
    place(&orders, 2)?;
    let mut process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    )
    .page_size(3);
    assert_eq!(process.position()?, 3);
    assert_eq!(process.run_until_caught_up()?, 4);
    assert_eq!(process.position()?, 7);
    // One payment per order, in order: no duplicates, no gaps.
    assert_eq!(causes(&payments)?, upstream_ids(&orders)?);
    Ok(())
}

#[test]
fn a_background_runner_woken_by_the_bus_catches_up_and_chains() -> TestResult {
    use eventsourcing::system::Projector;
    use eventsourcing_examples::shop::{OrderCommands, RevenuePerDay};

    let orders = Application::in_memory().expect("in-memory application");
    let payments = Application::in_memory().expect("in-memory application");
    let process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    );
    let revenue = Projector::new(
        RevenuePerDay::default(),
        Upstream::application("payments", &payments),
    );
    // A long poll interval: only the bus (or wait_until_caught_up) wakes the runner promptly.
    let mut handle = Runner::new()
        .with(process)
        .with(revenue)
        .spawn(Duration::from_secs(3600))?;
    handle.follow_bus(orders.bus());

    let mut order = place_order("alice", 300, "2024-05-01")?;
    orders.save(&mut order)?;
    order.cancel_once()?;
    orders.save(&mut order)?;
    place(&orders, 2)?;
    assert!(handle.wait_until_caught_up(Duration::from_secs(30)));
    assert!(handle.take_error().is_none());
    assert_eq!(payments.notification_log().max_position()?, 4);
    let runner = handle.stop()?;
    let positions: Vec<u64> = runner
        .followers()
        .iter()
        .map(|f| f.position())
        .collect::<Result<_, _>>()?;
    assert_eq!(positions, vec![4, 4]);
    Ok(())
}

#[test]
fn the_runner_reports_errors_and_keeps_other_followers_going() -> TestResult {
    let orders = Application::in_memory().expect("in-memory application");
    let good = Application::in_memory().expect("in-memory application");
    let bad = Application::in_memory().expect("in-memory application");
    place(&orders, 2)?;
    let mut runner = Runner::new()
        .with(ProcessApplication::new(
            bad.clone(),
            Upstream::application("orders", &orders),
            Flaky { fail_at: Some(1) },
        ))
        .with(ProcessApplication::new(
            good.clone(),
            Upstream::application("orders", &orders),
            Payments,
        ));
    assert!(matches!(
        runner.run_until_caught_up(),
        Err(SystemError::Policy { position: 1, .. })
    ));
    assert_eq!(good.notification_log().max_position()?, 2);
    assert_eq!(bad.notification_log().max_position()?, 0);
    Ok(())
}

/// A policy that answers each order with one dog holding `tricks` tricks, named `name`.
struct Kennel {
    name: String,
    tricks: usize,
}

impl eventsourcing::system::Policy for Kennel {
    fn process(
        &mut self,
        _event: &eventsourcing::system::Notification<'_>,
        ctx: &mut eventsourcing::system::ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        use eventsourcing_examples::dog_school::{Dog, DogCommands, DogEvent};
        let mut dog = ctx.create::<Dog>(DogEvent::Registered {
            name: self.name.clone(),
        })?;
        for n in 0..self.tricks {
            dog.add_trick(format!("trick {n}"));
        }
        ctx.save(&mut dog)?;
        Ok(())
    }
}

/// A process application's commit goes through the event store's door like a save: the
/// size limits hold (nothing written, the upstream event not tracked), and automatic
/// snapshots are taken.
#[test]
fn process_commits_pass_the_limits_and_take_snapshots() -> TestResult {
    for (backend, make) in backends("process_commits_pass_the_limits_and_take_snapshots") {
        let orders = app(make())?;
        place(&orders, 1)?;
        let storage = make();
        let kennel = Application::builder()
            .storage(Arc::clone(&storage))
            .snapshot_default_every(10)
            .build()?;
        // 20,002 events in one commit, where the default limit is 10,000.
        let mut process = ProcessApplication::new(
            kennel.clone(),
            Upstream::application("orders", &orders),
            Kennel {
                name: "Rex".into(),
                tricks: 20_001,
            },
        );
        let error = process
            .run_until_caught_up()
            .expect_err("above the batch limit");
        assert!(
            matches!(
                &error,
                SystemError::Store {
                    source: ApplicationError::Persistence(
                        eventsourcing::PersistenceError::LimitExceeded { .. }
                    ),
                    ..
                }
            ),
            "{backend}: {error:?}"
        );
        assert_eq!(count(&kennel)?, 0, "{backend}: nothing written");
        assert_eq!(process.position()?, 0, "{backend}: not tracked");
        // A 2 MiB event, where the default limit is 1 MiB.
        let mut process = ProcessApplication::new(
            kennel.clone(),
            Upstream::application("orders", &orders),
            Kennel {
                name: "R".repeat(2 << 20),
                tricks: 0,
            },
        );
        let error = process
            .run_until_caught_up()
            .expect_err("above the size limit");
        assert!(error.to_string().contains("limit"), "{backend}: {error}");
        assert_eq!(count(&kennel)?, 0, "{backend}: nothing written");
        // Within the limits: committed, and snapshotted every 10 events as configured.
        let mut process = ProcessApplication::new(
            kennel.clone(),
            Upstream::application("orders", &orders),
            Kennel {
                name: "Rex".into(),
                tricks: 11,
            },
        );
        assert_eq!(process.run_until_caught_up()?, 1, "{backend}");
        let dog = kennel.notification_log().select(1, 1)?;
        let snapshot = storage.latest_snapshot(&dog[0].stream_id, None)?;
        assert_eq!(
            snapshot.map(|s| s.version),
            Some(12),
            "{backend}: the automatic snapshot of a process commit"
        );
    }
    Ok(())
}
