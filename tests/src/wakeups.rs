//! Helpers of the cross-process wake-up tests: a writer in a child OS process (the test
//! binary itself, re-invoked on its entry test) printing its commit times, and the latency
//! from each commit to the first wake-up after it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (one clock for both processes of one machine).
#[must_use]
pub fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Waits (at most 5 s) until `listener` has its first connection.
pub fn wait_until_listening(listener: &eventsourcing::persistence::CommitListener) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while listener.connections() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Prints a commit time for the parent to read.
pub fn report_commit() {
    println!("COMMITTED {}", micros_now());
}

/// Runs the test `entry` of this test binary in a child process with `env = spec`; returns
/// the commit times it printed.
///
/// # Panics
/// When the child cannot be started or fails.
#[must_use]
pub fn run_child_writer(entry: &str, env: &str, spec: &str) -> Vec<u128> {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([entry, "--nocapture", "--test-threads=1"])
        .env(env, spec)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let commits = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // The first line may follow libtest's "test ... " on the same line.
        .filter_map(|line| line.split("COMMITTED ").nth(1)?.trim().parse().ok())
        .collect();
    assert!(child.wait().expect("writer").success(), "the writer failed");
    commits
}

/// For each commit, the microseconds until the first wake-up at or after it (`u128::MAX`
/// when none came).
#[must_use]
pub fn latencies(commits: &[u128], wakes: &[u128]) -> Vec<u128> {
    commits
        .iter()
        .map(|&c| {
            wakes
                .iter()
                .find(|&&w| w >= c)
                .map_or(u128::MAX, |&w| w - c)
        })
        .collect()
}

/// The `p` quantile (0 to 1) of sorted values.
#[must_use]
pub fn percentile(sorted: &[u128], p: f64) -> u128 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(index.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}
