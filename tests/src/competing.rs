//! Helpers of the competing-consumer tests: instances in child OS processes (the
//! `competing_instance` binary of this crate), upstream writes, and the check that every
//! upstream event was applied exactly once downstream, in per-stream order.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::system::Notification;
use eventsourcing_examples::competing::{CopyEvent, Ticker, TickerCommands};

/// An instance in a child process, with the lines it printed so far.
pub struct Instance {
    /// Its owner id.
    pub name: String,
    /// The process.
    pub child: Child,
    /// Its output lines (status reports), shared with the reader thread.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    /// Starts `competing_instance` (`exe`) as `name`.
    ///
    /// # Panics
    /// When the process cannot be started.
    #[must_use]
    pub fn start(
        exe: &str,
        name: &str,
        upstream: &str,
        downstream: &str,
        settings: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(exe);
        command
            .env("ES_COMPETING_UPSTREAM", upstream)
            .env("ES_COMPETING_DOWNSTREAM", downstream)
            .env("ES_COMPETING_INSTANCE", name)
            .stdout(Stdio::piped());
        for (key, value) in settings {
            command.env(format!("ES_COMPETING_{key}"), value);
        }
        let mut child = command.spawn().expect("start an instance");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// The value of `key=` in the last status line that has it.
    fn last_field(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines.iter().rev().find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(prefix.as_str()))
                .map(str::to_owned)
        })
    }

    /// The partitions of its last status line.
    #[must_use]
    pub fn held(&self) -> Vec<u32> {
        self.last_field("partitions")
            .map(|held| held.split(',').filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The fenced commits of its last status line.
    #[must_use]
    pub fn fenced(&self) -> u64 {
        self.last_field("fenced")
            .and_then(|n| n.parse().ok())
            .unwrap_or_default()
    }

    /// Its last output line (empty when none).
    #[must_use]
    pub fn last_line(&self) -> String {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines.last().cloned().unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`).
    ///
    /// # Panics
    /// When `kill` cannot run.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to end (at most `timeout`); whether it exited successfully.
    pub fn wait(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `tickers` new tickers of `ticks` ticks each (one save each); returns their stream
/// ids and event counts.
///
/// # Panics
/// When a save fails.
#[must_use]
pub fn write_tickers(app: &Application, tickers: usize, ticks: usize) -> BTreeMap<String, u64> {
    let mut written = BTreeMap::new();
    for _ in 0..tickers {
        let mut ticker = Ticker::start();
        for _ in 0..ticks {
            ticker.tick();
        }
        let id = ticker.id().to_string();
        app.save(&mut ticker).expect("save a ticker");
        written.insert(id, ticks as u64 + 1);
    }
    written
}

/// Each upstream stream's versions as copied downstream, in downstream position order, and
/// the copies made by each instance.
///
/// # Panics
/// When the log cannot be read.
#[must_use]
pub fn copies(downstream: &Application) -> (BTreeMap<String, Vec<u64>>, BTreeMap<String, u64>) {
    let mut streams: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut by_instance = BTreeMap::new();
    let mut from = 1;
    loop {
        let page = downstream
            .notification_log()
            .select(from, 1000)
            .expect("read downstream");
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        for event in &page {
            let notification = Notification::new(event, downstream.event_store().mapper());
            if let Some(copy) = notification.decode::<CopyEvent>().expect("decode") {
                let CopyEvent::Made {
                    stream,
                    version,
                    instance,
                } = copy.event;
                streams.entry(stream).or_default().push(version);
                *by_instance.entry(instance).or_insert(0) += 1;
            }
        }
        from = last + 1;
    }
    (streams, by_instance)
}

/// How many copies are downstream.
#[must_use]
pub fn copy_count(downstream: &Application) -> usize {
    copies(downstream).0.values().map(Vec::len).sum()
}

/// Waits until `expected` copies are downstream (at most `timeout`).
#[must_use]
pub fn wait_for_copies(downstream: &Application, expected: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if copy_count(downstream) >= expected {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits (at most `timeout`) until every event of `written` is copied downstream, then
/// asserts that each was copied exactly once and in its stream's order.
///
/// # Panics
/// When the copies do not all arrive in time, or one was lost, copied twice or out of order.
pub fn assert_all_copied_once(
    written: &BTreeMap<String, u64>,
    downstream: &Application,
    timeout: Duration,
) {
    let total: u64 = written.values().sum();
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    assert!(
        wait_for_copies(downstream, total, timeout),
        "every upstream event is copied ({} of {total})",
        copy_count(downstream)
    );
    assert_exactly_once_in_order(written, downstream);
}

/// Asserts that every upstream event was copied exactly once, each stream's in version order.
///
/// # Panics
/// When one was lost, copied twice or out of order.
pub fn assert_exactly_once_in_order(written: &BTreeMap<String, u64>, downstream: &Application) {
    let (streams, _) = copies(downstream);
    for (stream, count) in written {
        let expected: Vec<u64> = (1..=*count).collect();
        assert_eq!(
            streams.get(stream),
            Some(&expected),
            "stream {stream}: every event once, in order"
        );
    }
    assert_eq!(streams.len(), written.len(), "no copies of other streams");
}
