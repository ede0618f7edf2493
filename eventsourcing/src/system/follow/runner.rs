//! Runners: drive several followers (process applications, projections) until they catch up,
//! in the calling thread or in a background thread woken by application buses.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Follower, FollowerStatus};
use crate::application::{EventBus, SubscriptionId};
use crate::system::SystemError;

/// Drives followers in rounds until a whole round reads nothing, so chains (orders →
/// payments → shipping) settle in one call. Single-threaded; see [`Runner::spawn`] for a
/// background thread.
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::persistence::BoxError;
/// use eventsourcing::system::{Notification, Projection, Projector, Runner, Upstream};
///
/// struct Count(u64);
/// impl Projection for Count {
///     fn name(&self) -> &str { "count" }
///     fn apply(&mut self, _: &Notification<'_>) -> Result<(), BoxError> { self.0 += 1; Ok(()) }
///     fn reset(&mut self) { self.0 = 0; }
/// }
///
/// let app = Application::in_memory()?;
/// let mut runner = Runner::new().with(Projector::new(Count(0), Upstream::application("app", &app)));
/// assert_eq!(runner.run_until_caught_up()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Runner {
    followers: Vec<Box<dyn Follower>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.followers.iter().map(|f| f.name()))
            .finish()
    }
}

impl Runner {
    /// A runner with no followers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a follower (builder style).
    #[must_use]
    pub fn with(mut self, follower: impl Follower + 'static) -> Self {
        self.add(follower);
        self
    }

    /// Adds a follower.
    pub fn add(&mut self, follower: impl Follower + 'static) {
        self.followers.push(Box::new(follower));
    }

    /// The followers, in the order added.
    #[must_use]
    pub fn followers(&self) -> &[Box<dyn Follower>] {
        &self.followers
    }

    /// The followers, mutably.
    pub fn followers_mut(&mut self) -> &mut [Box<dyn Follower>] {
        &mut self.followers
    }

    /// Runs every follower until caught up, in rounds, until a round reads nothing; returns
    /// the total read. A failing follower does not stop the others in its round; the round's
    /// first error is returned at its end.
    ///
    /// # Errors
    /// The first follower error of the first round that had one.
    pub fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        let mut total = 0u64;
        loop {
            let mut round = 0u64;
            let mut first_error = None;
            for follower in &mut self.followers {
                match follower.run_until_caught_up() {
                    Ok(read) => round += read,
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            total += round;
            if let Some(error) = first_error {
                return Err(error);
            }
            if round == 0 {
                return Ok(total);
            }
        }
    }

    /// Releases what every follower holds for other instances (competing leases); the first
    /// error is returned after trying them all.
    ///
    /// # Errors
    /// The first follower's [`Follower::release`] error.
    pub fn release(&mut self) -> Result<(), SystemError> {
        let mut first_error = None;
        for follower in &mut self.followers {
            if let Err(error) = follower.release() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A status report: each follower's position, partitions held and parked events.
    #[must_use]
    pub fn status(&self) -> Vec<FollowerStatus> {
        self.followers.iter().map(|f| f.status()).collect()
    }

    /// Moves the runner to a background thread that runs it when triggered (by
    /// [`RunnerHandle::trigger`] or a bus given to [`RunnerHandle::follow_bus`]) and at
    /// least every `poll_interval`, so it catches up even if a notification is missed.
    ///
    /// # Errors
    /// [`SystemError::Runner`] when the thread cannot be started.
    pub fn spawn(self, poll_interval: Duration) -> Result<RunnerHandle, SystemError> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("eventsourcing-runner".into())
            .spawn(move || background(self, &thread_shared, poll_interval))
            .map_err(|e| SystemError::Runner(format!("cannot start the runner thread: {e}")))?;
        Ok(RunnerHandle {
            shared,
            thread: Some(thread),
            subscriptions: Vec::new(),
        })
    }
}

#[derive(Default, Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) changed: Condvar,
}

#[derive(Default, Debug)]
pub(super) struct State {
    /// Incremented by every trigger.
    pub(super) requested: u64,
    /// The `requested` value seen when the last finished round started.
    served: u64,
    stop: bool,
    error: Option<SystemError>,
    /// How many upstream events the background runs read in total.
    read: u64,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn trigger(&self) -> u64 {
        let mut state = self.lock();
        state.requested += 1;
        let requested = state.requested;
        drop(state);
        self.changed.notify_all();
        requested
    }
}

fn background(mut runner: Runner, shared: &Shared, poll_interval: Duration) -> Runner {
    loop {
        let mut state = shared.lock();
        let deadline = Instant::now() + poll_interval;
        while !state.stop && state.requested == state.served {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let stopping = state.stop;
        let starting = state.requested;
        drop(state);
        let result = runner.run_until_caught_up();
        let mut state = shared.lock();
        state.served = starting;
        match result {
            Ok(read) => state.read += read,
            Err(error) => state.error = Some(error),
        }
        drop(state);
        shared.changed.notify_all();
        if stopping {
            // A graceful stop: competing instances elsewhere take the partitions over now.
            if let Err(error) = runner.release() {
                shared.lock().error = Some(error);
            }
            return runner;
        }
    }
}

/// Wakes a background runner for a round ([`RunnerHandle::waker`]).
#[derive(Clone)]
pub struct RunnerWaker(Arc<Shared>);

impl RunnerWaker {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self(shared)
    }

    /// Wakes the runner for a round (a no-op once it has stopped).
    pub fn wake(&self) {
        self.0.trigger();
    }
}

impl std::fmt::Debug for RunnerWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerWaker").finish_non_exhaustive()
    }
}

/// Controls a runner moved to a background thread by [`Runner::spawn`]. Dropping it stops
/// the thread (after a last run) and cancels its bus subscriptions.
pub struct RunnerHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Runner>>,
    subscriptions: Vec<(EventBus, SubscriptionId)>,
}

impl std::fmt::Debug for RunnerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerHandle")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl RunnerHandle {
    /// Wakes the runner for a round.
    pub fn trigger(&self) {
        self.shared.trigger();
    }

    /// A cloneable, `Send` handle that wakes this runner, for wake-up sources on other
    /// threads (e.g. a PostgreSQL commit listener: `move || waker.wake()`).
    #[must_use]
    pub fn waker(&self) -> RunnerWaker {
        RunnerWaker(Arc::clone(&self.shared))
    }

    /// Wakes the runner whenever events are published on `bus` (an application's bus
    /// publishes after each commit). Correctness never depends on it: the runner reads the
    /// logs; the bus only makes it prompt.
    pub fn follow_bus(&mut self, bus: &EventBus) {
        let shared = Arc::clone(&self.shared);
        let id = bus.subscribe(move |_| {
            shared.trigger();
            Ok(())
        });
        self.subscriptions.push((bus.clone(), id));
    }

    /// Triggers a round and waits until a round that started after this call has finished,
    /// at most `timeout`; returns whether it did. Handy in tests and at shutdown.
    pub fn wait_until_caught_up(&self, timeout: Duration) -> bool {
        let wanted = self.shared.trigger();
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.served < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Takes the last error of a background round, if any (the runner keeps going: the
    /// failed events are retried on the next round).
    #[must_use]
    pub fn take_error(&self) -> Option<SystemError> {
        self.shared.lock().error.take()
    }

    /// How many upstream events the background rounds read so far.
    #[must_use]
    pub fn events_read(&self) -> u64 {
        self.shared.lock().read
    }

    /// Stops the thread after a last round and gives the runner back.
    ///
    /// # Errors
    /// [`SystemError::Runner`] when the thread panicked.
    pub fn stop(mut self) -> Result<Runner, SystemError> {
        self.shutdown()
            .ok_or_else(|| SystemError::Runner("the runner thread panicked".into()))
    }

    fn shutdown(&mut self) -> Option<Runner> {
        for (bus, id) in self.subscriptions.drain(..) {
            bus.unsubscribe(id);
        }
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        self.thread.take().and_then(|thread| thread.join().ok())
    }
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        drop(self.shutdown());
    }
}
