//! [`CommitListener`]: a thread that watches a store for commits made by any process and
//! wakes followers, backend by backend (PostgreSQL: `LISTEN`; SQLite: `PRAGMA data_version`).
//!
//! Correctness never depends on it: followers read the log by position. Whatever the backend
//! sees or misses, the listener also fires once every poll interval, so a missed commit
//! delays a follower by at most that long.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Listens for the commits of a store (in any process) and calls a function after each burst
/// of them, and at least once every poll interval. Made by
/// [`PostgresRecorder::listen_for_commits`](crate::persistence::PostgresRecorder::listen_for_commits)
/// and [`SqliteRecorder::listen_for_commits`](crate::persistence::SqliteRecorder::listen_for_commits).
/// Dropping it stops listening.
#[derive(Debug)]
pub struct CommitListener {
    stop: Arc<AtomicBool>,
    stats: Arc<ListenerStats>,
    thread: Option<JoinHandle<()>>,
}

/// What a listener's thread counts.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    notifications: AtomicU64,
    polls: AtomicU64,
    connections: AtomicU64,
}

/// The thread's side of a listener: fires `on_commit`, counts, and says when to stop.
pub(crate) struct Watch<'a> {
    pub(crate) stop: &'a AtomicBool,
    stats: &'a ListenerStats,
    on_commit: &'a dyn Fn(),
    poll_interval: Duration,
    last_fired: Instant,
}

impl Watch<'_> {
    /// Whether the listener was dropped.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The backend saw a commit (or commits).
    pub(crate) fn commit_seen(&mut self) {
        self.stats.notifications.fetch_add(1, Ordering::Relaxed);
        self.fire();
    }

    /// A new connection watches; commits may have been missed meanwhile.
    pub(crate) fn connected(&mut self) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.fire();
    }

    /// Fires if the poll interval passed without a firing.
    pub(crate) fn poll_if_due(&mut self) {
        if self.last_fired.elapsed() >= self.poll_interval {
            self.stats.polls.fetch_add(1, Ordering::Relaxed);
            self.fire();
        }
    }

    /// The poll interval.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn fire(&mut self) {
        (self.on_commit)();
        self.last_fired = Instant::now();
    }
}

impl CommitListener {
    /// Runs `body` on a thread of its own until it returns (it must return soon after
    /// [`Watch::stopped`] turns true).
    pub(crate) fn spawn(
        poll_interval: Duration,
        on_commit: Box<dyn Fn() + Send>,
        body: impl FnOnce(&mut Watch<'_>) + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ListenerStats::default());
        let (thread_stop, thread_stats) = (Arc::clone(&stop), Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("eventsourcing-listen".into())
            .spawn(move || {
                let mut watch = Watch {
                    stop: &thread_stop,
                    stats: &thread_stats,
                    on_commit: &*on_commit,
                    poll_interval,
                    last_fired: Instant::now(),
                };
                body(&mut watch);
            })
            .ok();
        Self {
            stop,
            stats,
            thread,
        }
    }

    /// Wake-ups caused by commits the backend saw.
    #[must_use]
    pub fn notifications(&self) -> u64 {
        self.stats.notifications.load(Ordering::Relaxed)
    }

    /// Wake-ups caused by the poll interval passing without one.
    #[must_use]
    pub fn polls(&self) -> u64 {
        self.stats.polls.load(Ordering::Relaxed)
    }

    /// Connections opened (1 plus the reconnects after a lost connection).
    #[must_use]
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }
}

impl Drop for CommitListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: the thread notices within a fraction of a second and ends.
        drop(self.thread.take());
    }
}
