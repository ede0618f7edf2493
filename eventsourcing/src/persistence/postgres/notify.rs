//! Cross-process wake-ups: appends announce their commits on a channel of the store
//! (`NOTIFY`), and a [`CommitListener`] in another process wakes its followers.
//!
//! Correctness never depends on them: followers read the log by position. A notification that
//! is lost (a listener reconnecting, a notifier that failed to send) or a listener connection
//! that dies delays a follower by at most the listener's poll interval, because the listener
//! also fires when the interval passes without a notification, and after every reconnect.
//!
//! The announcement is sent after the append commits, by one notifier thread per recorder on
//! its own connection, at most one every 2 ms, and the commits meanwhile share it
//! (coalesced): PostgreSQL serialises committing transactions that notify, so a `NOTIFY`
//! inside every append would put all appenders of the cluster behind one lock, and one per
//! append would double the server's work for single-event saves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::persistence::listener::Watch;

/// The channel of a store: one per schema and table prefix, short enough for PostgreSQL's
/// 63-byte identifiers whatever the names (FNV-1a of the qualified events table).
pub(super) fn channel(qualified_events: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in qualified_events.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("eventsourcing_{hash:016x}")
}

#[derive(Debug, Default)]
struct Pending {
    announce: bool,
    stop: bool,
}

/// Sends one `NOTIFY` for any number of commits announced while it was busy.
#[derive(Debug)]
pub(super) struct Notifier {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    sent: Arc<AtomicU64>,
}

impl Notifier {
    pub(super) fn start(config: postgres::Config, channel: String) -> Self {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (thread_shared, thread_sent) = (Arc::clone(&shared), Arc::clone(&sent));
        // Detached: it ends at its next wake after `stop`, and owns its connection, so the
        // client is never dropped on a caller's (maybe async) thread.
        let _ = std::thread::Builder::new()
            .name("eventsourcing-notify".into())
            .spawn(move || notify_loop(&config, &channel, &thread_shared, &thread_sent));
        Self { shared, sent }
    }

    /// Announces a commit; returns at once.
    pub(super) fn announce(&self) {
        let (pending, wake) = &*self.shared;
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .announce = true;
        wake.notify_one();
    }

    /// How many `NOTIFY`s were sent.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let (pending, wake) = &*self.shared;
        pending.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
    }
}

fn notify_loop(
    config: &postgres::Config,
    channel: &str,
    shared: &(Mutex<Pending>, Condvar),
    sent: &AtomicU64,
) {
    let (pending, wake) = shared;
    let mut client: Option<Client> = None;
    loop {
        {
            let mut state = pending.lock().unwrap_or_else(PoisonError::into_inner);
            while !state.announce && !state.stop {
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.announce = false;
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            client = config.connect(NoTls).ok();
        }
        let delivered = client
            .as_mut()
            .is_some_and(|c| c.execute("SELECT pg_notify($1, '')", &[&channel]).is_ok());
        if delivered {
            sent.fetch_add(1, Ordering::Relaxed);
        } else {
            // Lost: listeners fall back on their poll interval. Try a new connection next time.
            client = None;
        }
        // At most one announcement every `MIN_GAP`: commits meanwhile share the next one, so
        // a stream of single-event saves costs the server a few hundred NOTIFYs a second,
        // not one each.
        std::thread::sleep(MIN_GAP);
    }
}

/// The shortest time between two announcements of one recorder (the most they delay a
/// listener).
const MIN_GAP: Duration = Duration::from_millis(2);

/// How long one wait for notifications lasts, so that a stop is seen promptly.
const SLICE: Duration = Duration::from_millis(250);

/// The listener's thread: `LISTEN` on a connection of its own, reconnecting with backoff.
pub(super) fn listen_loop(config: &postgres::Config, channel: &str, watch: &mut Watch<'_>) {
    let mut client: Option<Client> = None;
    let mut backoff = Duration::from_millis(50);
    while !watch.stopped() {
        if client.as_ref().is_none_or(Client::is_closed) {
            let listening = config.connect(NoTls).ok().and_then(|mut fresh| {
                fresh
                    .batch_execute(&format!("LISTEN \"{channel}\""))
                    .ok()
                    .map(|()| fresh)
            });
            match listening {
                Some(fresh) => {
                    client = Some(fresh);
                    backoff = Duration::from_millis(50);
                    watch.connected();
                }
                None => {
                    std::thread::sleep(backoff.min(watch.poll_interval()));
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    watch.poll_if_due();
                    continue;
                }
            }
        }
        let Some(listening) = client.as_mut() else {
            continue;
        };
        let first = listening
            .notifications()
            .timeout_iter(SLICE.min(watch.poll_interval()))
            .next();
        match first {
            Ok(Some(_)) => {
                // One wake-up for the whole burst: take what else is already there, without
                // waiting.
                let mut pending = listening.notifications();
                let mut more = pending.iter();
                while let Ok(Some(_)) = more.next() {}
                watch.commit_seen();
            }
            Ok(None) => watch.poll_if_due(),
            Err(_) => client = None,
        }
    }
}
