//! Poison events: a policy that keeps failing on one upstream event. Retries with backoff,
//! then stop (the default) or park the event in a dead-letter record and go on; parked
//! events listed, retried and discarded. On memory, SQLite and PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use eventsourcing::persistence::{BoxError, Storage};
use eventsourcing::prelude::*;
use eventsourcing::system::{
    ErrorPolicy, Notification, Policy, Processed, ProcessingContext, SystemError,
};
use eventsourcing_examples::shop::{place_order, OrderEvent, Payment, PaymentEvent};
use eventsourcing_tests::backends;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn app(storage: Arc<dyn Storage>) -> Result<Application, ApplicationError> {
    Application::builder().storage(storage).build()
}

/// Charges every order, but fails on the orders of `poisoned` cents while `broken` is set;
/// counts its calls. `gate` makes concurrent retries meet inside the policy.
#[derive(Clone)]
struct Charges {
    poisoned: u64,
    broken: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    gate: Option<Arc<Barrier>>,
}

impl Charges {
    fn new(poisoned: u64) -> Self {
        Self {
            poisoned,
            broken: Arc::new(AtomicBool::new(true)),
            calls: Arc::new(AtomicUsize::new(0)),
            gate: None,
        }
    }
}

impl Policy for Charges {
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        let Some(order) = event.decode::<OrderEvent>()? else {
            return Ok(());
        };
        let OrderEvent::Placed {
            amount_cents, day, ..
        } = order.event
        else {
            return Ok(());
        };
        if amount_cents == self.poisoned {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.wait();
            }
            if self.broken.load(Ordering::SeqCst) {
                return Err(format!("cannot charge {amount_cents} cents").into());
            }
        }
        // A new aggregate each time: nothing but the dead-letter record's guard keeps two
        // retries from both charging.
        let mut payment = ctx.create::<Payment>(PaymentEvent::Charged { amount_cents, day })?;
        ctx.save(&mut payment)?;
        Ok(())
    }
}

/// Orders of 100, 200 and 300 cents; returns their upstream positions.
fn orders(upstream: &Application) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut positions = Vec::new();
    for cents in [100, 200, 300] {
        let mut order = place_order("customer", cents, "2024-05-01")?;
        let saved = upstream.save(&mut order)?;
        positions.extend(saved.positions);
    }
    Ok(positions)
}

/// The amounts charged downstream, in log order.
fn charged(downstream: &Application) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut amounts = Vec::new();
    for event in downstream.notification_log().select(1, usize::MAX)? {
        if let Ok(envelope) = downstream.event_store().decode::<PaymentEvent>(event) {
            if let PaymentEvent::Charged { amount_cents, .. } = envelope.event {
                amounts.push(amount_cents);
            }
        }
    }
    Ok(amounts)
}

fn quick(policy: ErrorPolicy) -> ErrorPolicy {
    policy.backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[test]
fn the_default_retries_three_times_then_stops_with_nothing_written() -> TestResult {
    for (backend, make) in backends("the_default_retries_three_times_then_stops") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        let positions = orders(&upstream)?;
        let policy = Charges::new(200);
        let calls = Arc::clone(&policy.calls);
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy,
        );
        let error = process
            .run_until_caught_up()
            .expect_err("the poisoned order stops it");
        assert!(
            matches!(&error, SystemError::Policy { position, .. } if *position == positions[1]),
            "{backend}: {error}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{backend}: three attempts");
        assert_eq!(
            process.position()?,
            positions[0],
            "{backend}: stopped before it"
        );
        assert_eq!(charged(&downstream)?, vec![100], "{backend}");
        assert!(
            process.parked()?.is_empty(),
            "{backend}: stopping parks nothing"
        );
    }
    Ok(())
}

#[test]
fn a_transient_failure_is_retried_and_commits_once() -> TestResult {
    for (backend, make) in backends("a_transient_failure_is_retried_and_commits_once") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        orders(&upstream)?;
        let policy = Charges::new(200);
        let (calls, broken) = (Arc::clone(&policy.calls), Arc::clone(&policy.broken));
        // Fails on the first attempt only: a second thread mends it after the first call.
        let mender = thread::spawn(move || {
            while calls.load(Ordering::SeqCst) == 0 {
                thread::sleep(Duration::from_micros(200));
            }
            broken.store(false, Ordering::SeqCst);
        });
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy.clone(),
        )
        .on_error(
            ErrorPolicy::stop_after(3)
                .backoff(Duration::from_millis(20), Duration::from_millis(40)),
        );
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        mender.join().expect("mender");
        assert_eq!(charged(&downstream)?, vec![100, 200, 300], "{backend}");
        assert!(
            policy.calls.load(Ordering::SeqCst) >= 2,
            "{backend}: retried"
        );
    }
    Ok(())
}

#[test]
fn a_poison_event_is_parked_and_the_follower_goes_on() -> TestResult {
    for (backend, make) in backends("a_poison_event_is_parked_and_the_follower_goes_on") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        let positions = orders(&upstream)?;
        let policy = Charges::new(200);
        let calls = Arc::clone(&policy.calls);
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy,
        )
        .named("charges")
        .on_error(quick(ErrorPolicy::park_after(2)));
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "{backend}: two attempts, then parked"
        );
        assert_eq!(charged(&downstream)?, vec![100, 300], "{backend}: went on");
        assert_eq!(process.position()?, positions[2], "{backend}");
        let parked = process.parked()?;
        assert_eq!(parked.len(), 1, "{backend}: recorded, not skipped silently");
        let record = &parked[0];
        assert_eq!(record.position, positions[1], "{backend}");
        assert_eq!(
            (record.follower.as_str(), record.upstream.as_str()),
            ("charges", "orders")
        );
        assert_eq!(record.attempts, 2, "{backend}");
        assert_eq!(record.error, "cannot charge 200 cents", "{backend}");
        assert!(record.first_failed_at <= record.last_failed_at, "{backend}");
        // Parked once: the tracking record committed with it, so no pull parks it again.
        assert_eq!(process.run_until_caught_up()?, 0, "{backend}");
        let mut again = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            Charges::new(200),
        )
        .named("charges")
        .on_error(quick(ErrorPolicy::park_after(2)));
        assert_eq!(
            again.run_until_caught_up()?,
            0,
            "{backend}: a restart resumes after it"
        );
        assert_eq!(again.parked()?.len(), 1, "{backend}");

        // The last event parked: its own tracking record is what keeps it from coming back.
        let last = app(make())?;
        let mut tail = ProcessApplication::new(
            last.clone(),
            Upstream::application("orders", &upstream),
            Charges::new(300),
        )
        .on_error(quick(ErrorPolicy::park_after(1)));
        assert_eq!(tail.run_until_caught_up()?, 3, "{backend}");
        assert_eq!(
            tail.position()?,
            positions[2],
            "{backend}: tracked with the record"
        );
        assert_eq!(tail.run_until_caught_up()?, 0, "{backend}");
        assert_eq!(tail.parked()?.len(), 1, "{backend}: parked once");
    }
    Ok(())
}

#[test]
fn a_parked_event_is_retried_once_or_discarded() -> TestResult {
    for (backend, make) in backends("a_parked_event_is_retried_once_or_discarded") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        let positions = orders(&upstream)?;
        let policy = Charges::new(200);
        let broken = Arc::clone(&policy.broken);
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy,
        )
        .on_error(quick(ErrorPolicy::park_after(1)));
        process.run_until_caught_up()?;
        // Still broken: the retry fails and the record stays open.
        assert!(matches!(
            process.retry_parked(positions[1]),
            Err(SystemError::Policy { .. })
        ));
        assert_eq!(process.parked()?.len(), 1, "{backend}");
        broken.store(false, Ordering::SeqCst);
        assert_eq!(
            process.retry_parked(positions[1])?,
            Processed::Committed { events: 1 },
            "{backend}"
        );
        assert!(process.parked()?.is_empty(), "{backend}");
        assert_eq!(charged(&downstream)?, vec![100, 300, 200], "{backend}");
        assert!(
            process.retry_parked(positions[1]).is_err(),
            "{backend}: a closed record cannot be retried again"
        );
        assert_eq!(
            charged(&downstream)?,
            vec![100, 300, 200],
            "{backend}: once"
        );

        // Discarding closes the record without effects.
        let mut order = place_order("customer", 200, "2024-05-02")?;
        let late = upstream.save(&mut order)?.positions[0];
        broken.store(true, Ordering::SeqCst);
        process.run_until_caught_up()?;
        assert_eq!(process.parked()?.len(), 1, "{backend}");
        process.discard_parked(late)?;
        assert!(process.parked()?.is_empty(), "{backend}");
        assert!(process.discard_parked(late).is_err(), "{backend}");
        assert_eq!(charged(&downstream)?, vec![100, 300, 200], "{backend}");
    }
    Ok(())
}

/// Two operators retry the same parked event at once: one commits, the other conflicts, and
/// the effect is there once.
#[test]
fn concurrent_retries_of_one_parked_event_commit_once() -> TestResult {
    for (backend, make) in backends("concurrent_retries_of_one_parked_event_commit_once") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        let positions = orders(&upstream)?;
        let mut policy = Charges::new(200);
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy.clone(),
        )
        .on_error(quick(ErrorPolicy::park_after(1)));
        process.run_until_caught_up()?;
        assert_eq!(process.parked()?.len(), 1, "{backend}");
        policy.broken.store(false, Ordering::SeqCst);
        policy.gate = Some(Arc::new(Barrier::new(2)));
        let operators: Vec<_> = (0..2)
            .map(|_| {
                let (downstream, upstream, policy) =
                    (downstream.clone(), upstream.clone(), policy.clone());
                let position = positions[1];
                thread::spawn(move || {
                    let mut operator = ProcessApplication::new(
                        downstream,
                        Upstream::application("orders", &upstream),
                        policy,
                    );
                    operator.retry_parked(position)
                })
            })
            .collect();
        let results: Vec<_> = operators
            .into_iter()
            .map(|h| h.join().expect("operator"))
            .collect();
        let committed = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(committed, 1, "{backend}: {results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(SystemError::Conflict { .. }))),
            "{backend}: the other retry conflicts: {results:?}"
        );
        assert_eq!(
            charged(&downstream)?,
            vec![100, 300, 200],
            "{backend}: once"
        );
        assert!(process.parked()?.is_empty(), "{backend}");
    }
    Ok(())
}

/// With batched commits, a poison event in the middle of a page is retried and parked as
/// without batching, and the rest of the page goes on.
#[test]
fn batched_pages_park_a_poison_event_and_go_on() -> TestResult {
    for (backend, make) in backends("batched_pages_park_a_poison_event_and_go_on") {
        let (upstream, downstream) = (app(make())?, app(make())?);
        let positions = orders(&upstream)?;
        let policy = Charges::new(200);
        let calls = Arc::clone(&policy.calls);
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("orders", &upstream),
            policy,
        )
        .batch_commits(true)
        .on_error(quick(ErrorPolicy::park_after(2)));
        assert_eq!(process.run_until_caught_up()?, 3, "{backend}: no error");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{backend}: two attempts");
        assert_eq!(charged(&downstream)?, vec![100, 300], "{backend}");
        let parked = process.parked()?;
        assert_eq!(parked.len(), 1, "{backend}");
        assert_eq!(parked[0].position, positions[1], "{backend}");
        assert_eq!(process.position()?, positions[2], "{backend}");
    }
    Ok(())
}

/// A retried event's new events carry the upstream's user metadata decrypted, as the live
/// path does, when the upstream encrypts metadata and the downstream does not.
#[test]
fn a_retry_carries_the_upstream_metadata_decrypted() -> TestResult {
    use eventsourcing::persistence::{CipherKey, Encryption, MemoryRecorder};
    use eventsourcing::EventContext;
    use eventsourcing_examples::shop::Order;
    use std::collections::BTreeMap;

    let key = CipherKey::generate()?;
    let upstream = Application::builder()
        .storage(Arc::new(MemoryRecorder::new()))
        .metadata_encryption(Arc::new(Encryption::new(&key)))
        .build()?;
    let downstream = app(Arc::new(MemoryRecorder::new()))?;
    let context = EventContext {
        user: BTreeMap::from([("who".to_owned(), "alice".to_owned())]),
        ..EventContext::default()
    };
    let mut order = eventsourcing::Aggregate::<Order>::create_in_context(
        Uuid::now_v7(),
        OrderEvent::Placed {
            customer: "customer".into(),
            amount_cents: 200,
            day: "2024-05-01".into(),
        },
        context,
    )?;
    let position = upstream.save(&mut order)?.positions[0];
    let policy = Charges::new(200);
    let broken = Arc::clone(&policy.broken);
    let mut process = ProcessApplication::new(
        downstream.clone(),
        Upstream::application("orders", &upstream),
        policy,
    )
    .on_error(quick(ErrorPolicy::park_after(1)));
    process.run_until_caught_up()?;
    broken.store(false, Ordering::SeqCst);
    process.retry_parked(position)?;
    let payments: Vec<_> = downstream
        .notification_log()
        .select(1, usize::MAX)?
        .into_iter()
        .filter(|e| e.topic.starts_with("Payment"))
        .collect();
    assert_eq!(payments.len(), 1);
    assert_eq!(
        payments[0].metadata.user.get("who").map(String::as_str),
        Some("alice"),
        "the value, not the upstream's ciphertext"
    );
    Ok(())
}

/// A policy whose store fails under it (unavailable, busy) is not given a poison event:
/// parking stops there, and the event is processed once the store is back.
#[test]
fn a_store_failure_under_the_policy_stops_instead_of_parking() -> TestResult {
    use eventsourcing::persistence::{MemoryRecorder, PersistenceError};

    let flaky = Arc::new(AtomicBool::new(true));
    let down = Arc::clone(&flaky);
    let policy =
        move |event: &Notification<'_>, ctx: &mut ProcessingContext<'_>| -> Result<(), BoxError> {
            if down.load(Ordering::SeqCst) {
                return Err(Box::new(ApplicationError::Persistence(
                    PersistenceError::Unavailable {
                        backend: "test",
                        source: "connection refused".into(),
                    },
                )));
            }
            let mut charges = Charges::new(0);
            charges.process(event, ctx)
        };
    let upstream = app(Arc::new(MemoryRecorder::new()))?;
    let downstream = app(Arc::new(MemoryRecorder::new()))?;
    orders(&upstream)?;
    let mut process = ProcessApplication::new(
        downstream.clone(),
        Upstream::application("orders", &upstream),
        policy,
    )
    .on_error(quick(ErrorPolicy::park_after(1)));
    assert!(matches!(
        process.run_until_caught_up(),
        Err(SystemError::Policy { .. })
    ));
    assert!(process.parked()?.is_empty(), "nothing parked");
    flaky.store(false, Ordering::SeqCst);
    assert_eq!(process.run_until_caught_up()?, 3);
    assert_eq!(charged(&downstream)?, vec![100, 200, 300]);
    Ok(())
}
