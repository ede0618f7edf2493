//! The async facade: the same core behind `async fn`s, bounded, and what a dropped save means.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use eventsourcing::asynchronous::{AsyncApplication, AsyncFollower, SaveOutcome};
use eventsourcing::persistence::RecorderLayer;
use eventsourcing::prelude::*;
use eventsourcing::system::{Projector, Upstream};
use eventsourcing::{
    AggregateRecorder, MemoryRecorder, PersistenceError, Storage, StreamAppend, Tracking,
};
use eventsourcing_examples::bank::{transfer, Account, AccountCommands};

use crate::Count;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn save_get_and_the_log_through_the_facade() {
    runtime().block_on(async {
        let app = AsyncApplication::new(Application::in_memory().expect("in-memory application"));
        let mut alice = Account::open("Alice".into(), 0);
        alice.deposit(100).expect("open account");
        let bob = Account::open("Bob".into(), 0);
        let ((mut alice, mut bob), saved) = app.save((alice, bob)).await.expect("save");
        assert_eq!(saved.positions, vec![1, 2, 3]);
        assert!(alice.pending_events().is_empty());

        transfer(&mut alice, &mut bob, 40).expect("transfer");
        app.save((alice, bob)).await.expect("transfer saved");

        let alice_id = app.notification_log().select(1, 1).await.expect("log")[0]
            .stream_id
            .clone();
        let id: Uuid = alice_id.parse().expect("uuid");
        let copy: Aggregate<Account> = app.get(id).await.expect("get");
        assert_eq!((copy.balance(), copy.version()), (60, 3));
        let at: Aggregate<Account> = app.repository().get_at(id, 2).await.expect("get_at");
        assert_eq!(at.balance(), 100);
        assert!(app
            .repository::<Account>()
            .contains(id)
            .await
            .expect("contains"));
        assert_eq!(app.notification_log().max_position().await.expect("max"), 5);
        assert!(matches!(
            app.get::<Account>(Uuid::now_v7()).await,
            Err(ApplicationError::NotFound { .. })
        ));
    });
}

#[test]
fn a_stale_save_through_the_facade_is_a_conflict() {
    runtime().block_on(async {
        let app = AsyncApplication::new(Application::in_memory().expect("in-memory application"));
        let (account, _) = app.save(Account::open("A".into(), 0)).await.expect("open");
        let mut first: Aggregate<Account> = app.get(account.id()).await.expect("get");
        let mut second: Aggregate<Account> = app.get(account.id()).await.expect("get");
        first.deposit(1).expect("deposit");
        second.deposit(2).expect("deposit");
        app.save(first).await.expect("first wins");
        let error = app.save(second).await.expect_err("second conflicts");
        assert!(error.is_conflict(), "{error}");
        let after: Aggregate<Account> = app.get(account.id()).await.expect("get");
        assert_eq!(after.balance(), 1);
    });
}

/// Many more concurrent calls than the bound: never more than the bound at once, including
/// calls whose futures were dropped while they ran (they keep their permit to the end).
#[test]
fn blocking_calls_are_bounded_even_when_their_futures_are_dropped() {
    runtime().block_on(async {
        let app = AsyncApplication::with_max_blocking(
            Application::in_memory().expect("in-memory application"),
            3,
        );
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let call = |app: AsyncApplication| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            async move {
                app.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(15));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }
        };
        // 30 calls given up after 5 ms: most of them are waiting then, some are running.
        let dropped: Vec<_> = (0..30)
            .map(|_| {
                let call = call(app.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_millis(5), call).await;
                })
            })
            .collect();
        for handle in dropped {
            handle.await.expect("task");
        }
        // 60 more, awaited.
        let kept: Vec<_> = (0..60).map(|_| tokio::spawn(call(app.clone()))).collect();
        for handle in kept {
            handle.await.expect("task").expect("call");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            3,
            "at most 3 at once, and 3 reached"
        );
        assert_eq!(app.available(), 3);
    });
}

/// A store whose appends wait at a gate: a save is caught mid-flight, inside its append.
struct Gated {
    inner: MemoryRecorder,
    entered: Mutex<mpsc::Sender<()>>,
    gate: Mutex<mpsc::Receiver<()>>,
}

impl RecorderLayer for Gated {
    fn inner(&self) -> &dyn Storage {
        &self.inner
    }
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        let _ = self.entered.lock().expect("lock").send(());
        let _ = self.gate.lock().expect("lock").recv();
        self.inner.append(batch, tracking)
    }
}

fn gated() -> (Application, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (open, gate_rx) = mpsc::channel();
    let storage: Arc<dyn Storage> = Arc::new(eventsourcing::persistence::Layered(Gated {
        inner: MemoryRecorder::new(),
        entered: Mutex::new(entered_tx),
        gate: Mutex::new(gate_rx),
    }));
    let app = Application::builder()
        .storage(storage)
        .build()
        .expect("application");
    (app, entered, open)
}

/// A save of two aggregates whose future is dropped while its append runs: it commits whole,
/// and the receipt says so once it has.
#[test]
fn a_save_dropped_mid_flight_commits_whole_and_the_receipt_tells() {
    runtime().block_on(async {
        let (app, entered, open) = gated();
        let app = AsyncApplication::new(app);
        let mut alice = Account::open("Alice".into(), 0);
        alice.deposit(10).expect("deposit");
        let bob = Account::open("Bob".into(), 0);
        let (alice_id, bob_id) = (alice.id(), bob.id());
        let save = app.save((alice, bob));
        let receipt = save.receipt();
        assert_eq!(receipt.event_ids().len(), 3);
        let mut task = tokio::spawn(save.into_future());
        // Inside the append now: drop the future.
        tokio::task::spawn_blocking(move || entered.recv().expect("the append started"))
            .await
            .expect("wait");
        task.abort();
        assert!((&mut task).await.expect_err("aborted").is_cancelled());
        // Nothing is stored yet; the outcome waits for the save to finish.
        let outcome = tokio::spawn(async move { receipt.outcome().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !outcome.is_finished(),
            "the outcome waits while the save runs"
        );
        assert_eq!(app.notification_log().max_position().await.expect("max"), 0);
        open.send(()).expect("open the gate");
        assert_eq!(
            outcome.await.expect("task").expect("outcome"),
            SaveOutcome::Committed
        );
        let log = app.notification_log().select(1, 10).await.expect("log");
        assert_eq!(log.len(), 3, "every event of the save");
        let alice: Aggregate<Account> = app.get(alice_id).await.expect("alice");
        let bob: Aggregate<Account> = app.get(bob_id).await.expect("bob");
        assert_eq!((alice.balance(), bob.version()), (10, 1));
    });
}

/// A save dropped while it waits for a permit never runs: nothing is written, ever, and the
/// receipt says so without waiting for the pool.
#[test]
fn a_save_dropped_before_it_starts_writes_nothing_and_the_receipt_tells() {
    runtime().block_on(async {
        let app = AsyncApplication::with_max_blocking(
            Application::in_memory().expect("in-memory application"),
            1,
        );
        // Hold the only permit.
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn({
            let app = app.clone();
            async move {
                app.run(move |_| {
                    let _ = started_tx.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
            }
        });
        started.await.expect("holder running");
        let account = Account::open("A".into(), 0);
        let id = account.id();
        let save = app.save(account);
        let receipt = save.receipt();
        assert!(tokio::time::timeout(Duration::from_millis(20), save)
            .await
            .is_err());
        // The save future is gone; the pool is still busy, yet the answer is final.
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), async {
                // The lookup itself needs the permit: release it once the wait is over.
                let outcome = tokio::spawn({
                    let receipt = receipt.clone();
                    async move { receipt.outcome().await }
                });
                release.send(()).expect("release");
                outcome.await.expect("task")
            })
            .await
            .expect("outcome in time")
            .expect("outcome"),
            SaveOutcome::NotCommitted
        );
        holder.await.expect("task").expect("holder");
        assert!(!app
            .repository::<Account>()
            .contains(id)
            .await
            .expect("contains"));
        assert_eq!(app.notification_log().max_position().await.expect("max"), 0);
    });
}

/// Followers: waiting for the log wakes on a save, and a follower catches up on the pool.
#[test]
fn followers_wake_on_saves_and_catch_up_on_the_pool() {
    runtime().block_on(async {
        let app = AsyncApplication::new(Application::in_memory().expect("in-memory application"));
        let log = app.notification_log();
        // A long poll interval: only the commit can wake the waiter in time.
        let waiter = tokio::spawn({
            let log = log.clone();
            async move { log.wait_after(0, 10, Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        app.save(Account::open("A".into(), 0)).await.expect("save");
        let page = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the commit")
            .expect("task")
            .expect("page");
        assert_eq!(page.len(), 1);
        assert_eq!(log.last_committed(), 1);

        let projector = Projector::new(Count(0), Upstream::application("app", app.blocking_app()));
        let follower = AsyncFollower::new(projector, &app);
        let following = tokio::spawn({
            let follower = follower.clone();
            async move { follower.follow(Duration::from_secs(60)).await }
        });
        app.save(Account::open("B".into(), 0)).await.expect("save");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let count = follower.with(|p| p.projection().0).await.expect("count");
            if count == 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "follower at {count}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        following.abort();
        assert_eq!(follower.position().await.expect("position"), 2);
    });
}
