//! Competing instances of one process application in one process, on one shared in-memory
//! downstream store: the partitions are shared and rebalanced, a released lease moves at
//! once, batched commits stay exactly-once, and a commit whose lease moved while its policy
//! ran is refused (fencing), deterministically.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsourcing::persistence::{
    BoxError, Layered, LeaseRecorder, MemoryRecorder, RecorderLayer, Storage,
};
use eventsourcing::prelude::*;
use eventsourcing::system::{
    Competing, Notification, Policy, ProcessApplication, ProcessingContext, SystemError, Upstream,
};
use eventsourcing_examples::competing::CopyPolicy;
use eventsourcing_tests::competing::{assert_exactly_once_in_order, copies, write_tickers};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn instance<P: Policy>(
    name: &str,
    store: &Arc<dyn Storage>,
    upstream: &Application,
    policy: P,
    ttl: Duration,
) -> Result<ProcessApplication<P>, ApplicationError> {
    let downstream = Application::builder().storage(Arc::clone(store)).build()?;
    Ok(ProcessApplication::new(
        downstream,
        Upstream::application("tickers", upstream),
        policy,
    )
    .named("copier")
    .competing(Competing::new(8).owner(name).lease_ttl(ttl)))
}

/// Eight partitions, owned by `name`, rebalanced at every pull.
fn every_pull(name: &str, ttl: Duration) -> Competing {
    Competing::new(8)
        .owner(name)
        .lease_ttl(ttl)
        .heartbeat(Duration::ZERO)
}

fn copier(name: &str) -> CopyPolicy {
    CopyPolicy {
        instance: name.to_owned(),
        work: Duration::ZERO,
        trace: false,
    }
}

#[test]
fn two_instances_share_the_partitions_and_apply_each_event_once() -> TestResult {
    let upstream = Application::in_memory()?;
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let ttl = Duration::from_secs(30);
    let mut a = instance("a", &store, &upstream, copier("a"), ttl)?.competing(every_pull("a", ttl));
    let mut b = instance("b", &store, &upstream, copier("b"), ttl)?.competing(every_pull("b", ttl));
    let written = write_tickers(&upstream, 40, 4);
    // The first heartbeat of `a` sees one member and takes all eight partitions.
    a.pull()?;
    assert_eq!(a.partitions_held().len(), 8);
    b.pull()?;
    assert!(b.partitions_held().is_empty(), "all are held by a");
    // At a's next heartbeat it sees b and releases b's share, which b then takes.
    for _ in 0..2 {
        a.pull()?;
        b.pull()?;
    }
    let held_a: Vec<u32> = a.partitions_held().iter().map(|(p, _)| *p).collect();
    let held_b: Vec<u32> = b.partitions_held().iter().map(|(p, _)| *p).collect();
    assert_eq!(
        (held_a.len(), held_b.len()),
        (4, 4),
        "{held_a:?} {held_b:?}"
    );
    assert_eq!(a.members(), ["a", "b"]);
    a.run_until_caught_up()?;
    b.run_until_caught_up()?;
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    assert_exactly_once_in_order(&written, &downstream);
    let (_, by_instance) = copies(&downstream);
    assert_eq!(by_instance.len(), 2, "{by_instance:?}");
    assert_eq!(
        a.position()?,
        b.position()?,
        "one position for the follower"
    );
    let status = eventsourcing::system::Follower::status(&a);
    assert_eq!(
        (status.lag, status.members, status.partitions.len()),
        (Some(0), 2, 4)
    );
    assert_eq!(status.parked, Some(0));
    let _ = write_tickers(&upstream, 1, 2);
    let status = eventsourcing::system::Follower::status(&b);
    assert_eq!(status.lag, Some(3), "three events not scanned yet");
    assert!(status.to_string().contains("lag 3"), "{status}");
    Ok(())
}

#[test]
fn a_released_lease_moves_at_the_next_heartbeat_and_batches_stay_exactly_once() -> TestResult {
    let upstream = Application::in_memory()?;
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let ttl = Duration::from_secs(30);
    let mut a = instance("a", &store, &upstream, copier("a"), ttl)?
        .competing(every_pull("a", ttl))
        .batch_commits(true);
    let mut b = instance("b", &store, &upstream, copier("b"), ttl)?
        .competing(every_pull("b", ttl))
        .batch_commits(true);
    let mut written = write_tickers(&upstream, 30, 5);
    for _ in 0..2 {
        a.pull()?;
        b.pull()?;
    }
    written.extend(write_tickers(&upstream, 30, 5));
    a.release_leases()?;
    // `a` is gone (its leases released, long before they would expire): b takes everything.
    b.run_until_caught_up()?;
    assert_eq!(b.partitions_held().len(), 8);
    assert_eq!(b.members(), ["b"]);
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    assert_exactly_once_in_order(&written, &downstream);
    Ok(())
}

/// Waits at a gate inside the policy, once, on the event of one stream.
struct Gated {
    inner: CopyPolicy,
    stream: String,
    reached: mpsc::Sender<()>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Policy for Gated {
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        if event.stream_id == self.stream {
            let _ = self.reached.send(());
            let _ = self.gate.lock().expect("gate").recv();
        }
        self.inner.process(event, ctx)
    }
}

#[test]
fn a_commit_whose_lease_moved_while_its_policy_ran_is_refused() -> TestResult {
    let upstream = Application::in_memory()?;
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let written = write_tickers(&upstream, 1, 0);
    let stream = written.keys().next().cloned().unwrap_or_default();
    let ttl = Duration::from_millis(150);
    let (a_reached, a_at_gate) = mpsc::channel();
    let (a_open, a_gate) = mpsc::channel();
    let a_policy = Gated {
        inner: copier("a"),
        stream: stream.clone(),
        reached: a_reached,
        gate: Arc::new(Mutex::new(a_gate)),
    };
    let mut a = instance("a", &store, &upstream, a_policy, ttl)?;
    let a_thread = std::thread::spawn(move || {
        let result = a.pull();
        (a, result)
    });
    a_at_gate.recv_timeout(Duration::from_secs(5))?;
    // a's leases expire while its policy waits; b takes the partition over and reaches the
    // same event, where it waits too: nobody has committed the event yet.
    std::thread::sleep(ttl * 2);
    let (b_reached, b_at_gate) = mpsc::channel();
    let (b_open, b_gate) = mpsc::channel();
    let b_policy = Gated {
        inner: copier("b"),
        stream,
        reached: b_reached,
        gate: Arc::new(Mutex::new(b_gate)),
    };
    let mut b = instance("b", &store, &upstream, b_policy, Duration::from_secs(30))?;
    let b_thread = std::thread::spawn(move || {
        let result = b.pull();
        (b, result)
    });
    b_at_gate.recv_timeout(Duration::from_secs(5))?;
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;

    // a resumes first: its commit is fenced, nothing is written.
    a_open.send(())?;
    let (a, result) = a_thread.join().map_err(|_| "a panicked")?;
    result?;
    assert_eq!(
        copies(&downstream).1.get("a"),
        None,
        "the fenced commit wrote nothing"
    );
    assert!(a.partitions_held().is_empty(), "a dropped the partition");
    assert_eq!(eventsourcing::system::Follower::status(&a).fenced, 1);

    // b commits the event, once.
    b_open.send(())?;
    let (_b, result) = b_thread.join().map_err(|_| "b panicked")?;
    result?;
    assert_exactly_once_in_order(&written, &downstream);
    assert_eq!(copies(&downstream).1.get("b"), Some(&1));
    Ok(())
}

/// A store that keeps no leases.
struct NoLeases(Arc<dyn Storage>);

impl RecorderLayer for NoLeases {
    fn inner(&self) -> &dyn Storage {
        &*self.0
    }
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        None
    }
}

#[test]
fn a_store_without_leases_and_a_changed_partition_count_are_refused() -> TestResult {
    let upstream = Application::in_memory()?;
    let _ = write_tickers(&upstream, 2, 1);
    let plain: Arc<dyn Storage> = Arc::new(Layered(NoLeases(Arc::new(MemoryRecorder::new()))));
    let mut process = instance("a", &plain, &upstream, copier("a"), Duration::from_secs(5))?;
    match process.pull() {
        Err(SystemError::Store { source, .. }) => {
            assert!(source.to_string().contains("leases"), "{source}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }

    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let mut eight = instance("a", &store, &upstream, copier("a"), Duration::from_secs(5))?;
    eight.run_until_caught_up()?;
    drop(eight);
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    let mut four = ProcessApplication::new(
        downstream,
        Upstream::application("tickers", &upstream),
        copier("b"),
    )
    .named("copier")
    .competing(Competing::new(4).owner("b"));
    match four.pull() {
        Err(SystemError::Store { source, .. }) => {
            assert!(
                source.to_string().contains("partitioned into 8, not 4"),
                "{source}"
            );
        }
        other => panic!("expected the partition count refused, got {other:?}"),
    }
    Ok(())
}

/// Leases whose `acquire_lease` fails once, at one given call.
struct FlakyLeases {
    store: Arc<MemoryRecorder>,
    calls: std::sync::atomic::AtomicUsize,
    fail_at: usize,
}

impl LeaseRecorder for FlakyLeases {
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<
        Option<eventsourcing::persistence::Lease>,
        eventsourcing::persistence::PersistenceError,
    > {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if call == self.fail_at {
            return Err(eventsourcing::persistence::PersistenceError::Config(
                "a lost connection, once".into(),
            ));
        }
        self.store.acquire_lease(name, owner, ttl)
    }
    fn renew_lease(
        &self,
        lease: &eventsourcing::persistence::Lease,
        ttl: Duration,
    ) -> Result<bool, eventsourcing::persistence::PersistenceError> {
        self.store.renew_lease(lease, ttl)
    }
    fn release_lease(
        &self,
        lease: &eventsourcing::persistence::Lease,
    ) -> Result<(), eventsourcing::persistence::PersistenceError> {
        self.store.release_lease(lease)
    }
    fn remove_lease(
        &self,
        lease: &eventsourcing::persistence::Lease,
    ) -> Result<(), eventsourcing::persistence::PersistenceError> {
        self.store.remove_lease(lease)
    }
    fn list_leases(
        &self,
        prefix: &str,
    ) -> Result<
        Vec<eventsourcing::persistence::LeaseState>,
        eventsourcing::persistence::PersistenceError,
    > {
        self.store.list_leases(prefix)
    }
}

struct WithFlakyLeases(Arc<MemoryRecorder>, FlakyLeases);

impl RecorderLayer for WithFlakyLeases {
    fn inner(&self) -> &dyn Storage {
        &*self.0
    }
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        Some(&self.1)
    }
}

#[test]
fn a_heartbeat_that_fails_half_way_routes_nothing_it_does_not_know_and_retries() -> TestResult {
    let upstream = Application::in_memory()?;
    let written = write_tickers(&upstream, 12, 2);
    let memory = Arc::new(MemoryRecorder::new());
    // Calls: the member lease, then partition 0, then partition 1 (which fails).
    let flaky = FlakyLeases {
        store: Arc::clone(&memory),
        calls: std::sync::atomic::AtomicUsize::new(0),
        fail_at: 3,
    };
    let store: Arc<dyn Storage> = Arc::new(Layered(WithFlakyLeases(memory, flaky)));
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    let mut process = ProcessApplication::new(
        downstream.clone(),
        Upstream::application("tickers", &upstream),
        copier("a"),
    )
    .named("copier")
    .competing(
        Competing::new(2)
            .owner("a")
            .heartbeat(Duration::from_secs(3600)),
    );
    assert!(process.pull().is_err(), "the heartbeat fails");
    // The next pull retries at once (not an hour later), and nothing was routed at an
    // unknown position meanwhile.
    process.run_until_caught_up()?;
    assert_eq!(process.partitions_held().len(), 2);
    assert_exactly_once_in_order(&written, &downstream);
    Ok(())
}

#[test]
fn two_instances_given_one_owner_id_still_share_and_never_hold_one_lease() -> TestResult {
    let upstream = Application::in_memory()?;
    let written = write_tickers(&upstream, 20, 2);
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let same = || Competing::new(8).owner("host-1").heartbeat(Duration::ZERO);
    let mut a =
        instance("x", &store, &upstream, copier("a"), Duration::from_secs(30))?.competing(same());
    let mut b =
        instance("x", &store, &upstream, copier("b"), Duration::from_secs(30))?.competing(same());
    for _ in 0..3 {
        a.pull()?;
        b.pull()?;
    }
    let held_a: Vec<u32> = a.partitions_held().iter().map(|(p, _)| *p).collect();
    let held_b: Vec<u32> = b.partitions_held().iter().map(|(p, _)| *p).collect();
    assert_eq!(
        (held_a.len(), held_b.len()),
        (4, 4),
        "{held_a:?} {held_b:?}"
    );
    assert!(held_a.iter().all(|p| !held_b.contains(p)), "disjoint");
    assert_eq!(a.members(), ["host-1", "host-1"]);
    a.run_until_caught_up()?;
    b.run_until_caught_up()?;
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    assert_exactly_once_in_order(&written, &downstream);
    Ok(())
}

/// A policy that spends `per_event` on each event.
struct Slow(CopyPolicy, Duration);

impl Policy for Slow {
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        std::thread::sleep(self.1);
        self.0.process(event, ctx)
    }
}

/// A batch of one partition whose policies take longer than the lease's time to live in all
/// still commits: the batch ends when a heartbeat is due and the lease is renewed between
/// batches (otherwise each batch is fenced, retried, fenced again).
#[test]
fn batches_longer_than_the_lease_still_make_progress() -> TestResult {
    let upstream = Application::in_memory()?;
    let written = write_tickers(&upstream, 1, 9); // one stream: one partition, one batch
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let policy = Slow(copier("a"), Duration::from_millis(40));
    let mut process = instance("a", &store, &upstream, policy, Duration::from_millis(150))?
        .competing(
            Competing::new(2)
                .owner("a")
                .lease_ttl(Duration::from_millis(150))
                .heartbeat(Duration::from_millis(50)),
        )
        .batch_commits(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let downstream = Application::builder().storage(Arc::clone(&store)).build()?;
    while copies(&downstream).0.values().map(Vec::len).sum::<usize>() < 10 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        process.pull()?;
    }
    assert_exactly_once_in_order(&written, &downstream);
    Ok(())
}

/// Member rows do not pile up: a member that stops removes its row, and the row of one that
/// vanished (never dropped, as a killed process) is removed by the others once it expired.
#[test]
fn member_rows_go_with_their_instances() -> TestResult {
    let upstream = Application::in_memory()?;
    let _ = write_tickers(&upstream, 4, 1);
    let store: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let ttl = Duration::from_millis(100);
    let four_partitions = |name: &str| {
        Competing::new(4)
            .owner(name)
            .lease_ttl(ttl)
            .heartbeat(Duration::ZERO)
    };
    let members = |store: &Arc<dyn Storage>| -> Result<usize, Box<dyn std::error::Error>> {
        let leases = store.leases().ok_or("leases")?;
        Ok(leases.list_leases("copier/member/")?.len())
    };
    let mut a = instance("a", &store, &upstream, copier("a"), ttl)?.competing(four_partitions("a"));
    let mut b = instance("b", &store, &upstream, copier("b"), ttl)?.competing(four_partitions("b"));
    a.pull()?;
    b.pull()?;
    assert_eq!(members(&store)?, 2);
    // `a` vanishes without a word, as a killed process does.
    std::mem::forget(a);
    std::thread::sleep(ttl * 2);
    b.pull()?;
    assert_eq!(
        members(&store)?,
        1,
        "the vanished member's expired row is removed"
    );
    b.release_leases()?;
    assert_eq!(members(&store)?, 0, "a member that stops removes its row");
    Ok(())
}
