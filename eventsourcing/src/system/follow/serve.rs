//! A runner as a whole process: rounds until SIGTERM or Ctrl-C, then a graceful stop (the
//! round in progress finishes, leases are released), with periodic status reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::runner::{RunnerWaker, Shared};
use super::{FollowerStatus, Runner};
use crate::system::SystemError;

/// How [`Runner::serve`] runs: a round at least every poll interval and whenever woken, a
/// status report every status interval, until a signal or [`Serve::stopper`].
///
/// ```no_run
/// use std::time::Duration;
/// use eventsourcing::system::{Runner, Serve};
///
/// let runner = Runner::new(); // .with(process application) ...
/// let serve = Serve::new(Duration::from_millis(500)).status_every(Duration::from_secs(10));
/// let last = runner.serve(serve, |status| {
///     for follower in status {
///         eprintln!("{follower}");
///     }
/// })?;
/// # Ok::<(), eventsourcing::system::SystemError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Serve {
    poll_interval: Duration,
    status_interval: Option<Duration>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// Stops a [`Runner::serve`] as SIGTERM does (from another thread, or a test).
#[derive(Debug, Clone)]
pub struct ServeStopper {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl ServeStopper {
    /// Asks for a graceful stop: the round in progress finishes, leases are released.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shared.trigger();
    }
}

impl Serve {
    /// Rounds at least every `poll_interval` (keep it below a competing follower's
    /// heartbeat interval, so leases are renewed in time); no status reports.
    #[must_use]
    pub fn new(poll_interval: Duration) -> Self {
        Self {
            poll_interval,
            status_interval: None,
            shared: Arc::new(Shared::default()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reports the followers' status every `interval` (and once at the end).
    #[must_use]
    pub fn status_every(mut self, interval: Duration) -> Self {
        self.status_interval = Some(interval);
        self
    }

    /// Wakes the runner for a round (give it to a commit listener or a bus).
    #[must_use]
    pub fn waker(&self) -> RunnerWaker {
        RunnerWaker::new(Arc::clone(&self.shared))
    }

    /// Stops the runner as a signal does.
    #[must_use]
    pub fn stopper(&self) -> ServeStopper {
        ServeStopper {
            stop: Arc::clone(&self.stop),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Runner {
    /// Runs the followers in this thread until SIGTERM or SIGINT (Ctrl-C) or
    /// [`Serve::stopper`]: a page of each follower in turn while they read anything, then a
    /// round when woken and at least every poll interval; a status report to `on_status`
    /// every status interval. On the signal, the page in progress finishes (its commits are
    /// whole), every follower releases its leases (competing
    /// instances elsewhere take the partitions over at their next heartbeat) and the last
    /// status is returned. A second SIGINT while stopping ends the process at once.
    ///
    /// A failing round is logged (`tracing`, warn) and retried at the next one: a store
    /// that is down for a while does not end the process.
    ///
    /// # Errors
    /// [`SystemError::Runner`] when the signal handlers cannot be installed; the first
    /// release error.
    pub fn serve(
        mut self,
        serve: Serve,
        mut on_status: impl FnMut(&[FollowerStatus]),
    ) -> Result<Vec<FollowerStatus>, SystemError> {
        let handlers = install_signal_handlers(&serve.stop)?;
        let mut next_status = serve.status_interval.map(|every| Instant::now() + every);
        while !serve.stop.load(Ordering::SeqCst) {
            let seen = serve.shared.lock().requested;
            // One page per follower at a time, so that a stop waits for one page, not for a
            // whole catch-up.
            let mut read = 0;
            for follower in self.followers_mut() {
                if serve.stop.load(Ordering::SeqCst) {
                    break;
                }
                match follower.pull() {
                    Ok(n) => read += n,
                    Err(error) => tracing::warn!(follower = follower.name(), error = %error,
                        "pull failed; retried at the next round"),
                }
            }
            if let (Some(at), Some(every)) = (next_status, serve.status_interval) {
                if Instant::now() >= at {
                    on_status(&self.status());
                    next_status = Some(Instant::now() + every);
                }
            }
            if read == 0 {
                wait(&serve, seen);
            }
        }
        // The signals act as before `serve` once it returns.
        for handler in handlers {
            signal_hook::low_level::unregister(handler);
        }
        let released = self.release();
        let status = self.status();
        on_status(&status);
        released.map(|()| status)
    }
}

/// Sleeps until woken, stopped or the poll interval has passed.
fn wait(serve: &Serve, seen: u64) {
    let deadline = Instant::now() + serve.poll_interval;
    let mut state = serve.shared.lock();
    // Signal handlers only set the flag: look at it every 50 ms.
    while state.requested == seen && !serve.stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        state = serve
            .shared
            .changed
            .wait_timeout(state, left.min(Duration::from_millis(50)))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

fn install_signal_handlers(stop: &Arc<AtomicBool>) -> Result<Vec<signal_hook::SigId>, SystemError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let failed =
        |e: std::io::Error| SystemError::Runner(format!("cannot install signal handlers: {e}"));
    // A second Ctrl-C while stopping exits at once; the first only sets the flag.
    let mut handlers =
        vec![
            signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(stop))
                .map_err(failed)?,
        ];
    for signal in [SIGTERM, SIGINT] {
        handlers.push(signal_hook::flag::register(signal, Arc::clone(stop)).map_err(failed)?);
    }
    Ok(handlers)
}
