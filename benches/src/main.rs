//! Benchmarks of the framework against raw baselines doing the same work on the same backend,
//! measured in the same run (absolute times on a shared machine are noise; ratios are not).
//!
//! ```text
//! cargo run --release -p eventsourcing-bench -- [--quick] [--backend memory|sqlite|postgres|cassandra|all]
//! ```
//!
//! Every workload prints one machine-readable line:
//! `RESULT <backend> <workload> ours=<n> baseline=<n> unit=<unit> ratio=<ours/baseline>`,
//! where every unit is a rate (higher is better), so the ratio is higher-is-better too.

mod alloc;
mod cassandra_raw;
mod domain;
mod followers;
mod large_state;
mod memory;
mod ours;
mod postgres_raw;
mod raw;
mod sqlite_raw;

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// A number for each concurrent run of the program, so that runs' hand-written streams
/// never collide (the writers curve runs several in one store).
pub fn next_run() -> usize {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Errors of the benchmark program: any error, reported and fatal.
pub type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How much work each workload does.
#[derive(Debug, Clone)]
pub struct Params {
    /// Quick mode (fewer events, shorter time boxes).
    pub quick: bool,
    /// Repetitions of each measurement (the median is reported).
    pub reps: usize,
    /// Time box of one rate measurement (save_one, append_batch100).
    pub budget: Duration,
    /// Events in the aggregate of load_10k.
    pub load_events: u64,
    /// Events after the snapshot in snapshot_load.
    pub after_snapshot: u64,
    /// Events read by scan_all.
    pub scan_events: u64,
    /// Events read once more to show that the scan's memory stays constant.
    pub scan_big: u64,
    /// Time box of one concurrent_8 run.
    pub concurrent_budget: Duration,
    /// Writer threads of concurrent_8.
    pub writers: usize,
    /// Page size of the notification scan.
    pub page: usize,
    /// Only these workloads, when not empty (`--only a,b`), e.g. to profile one of them.
    pub only: Vec<String>,
}

impl Params {
    /// Whether `workload` is to be run.
    #[must_use]
    pub fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w == workload)
    }

    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                reps: 5,
                budget: Duration::from_millis(400),
                load_events: 10_000,
                after_snapshot: 100,
                scan_events: 50_000,
                scan_big: 200_000,
                concurrent_budget: Duration::from_millis(1500),
                writers: 8,
                page: 1000,
                only: Vec::new(),
            }
        } else {
            Self {
                quick,
                reps: 5,
                budget: Duration::from_secs(2),
                load_events: 10_000,
                after_snapshot: 100,
                scan_events: 100_000,
                scan_big: 1_000_000,
                concurrent_budget: Duration::from_secs(5),
                writers: 8,
                page: 1000,
                only: Vec::new(),
            }
        }
    }
}

/// One measured workload.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `memory`, `sqlite`, `postgres` or `cassandra`.
    pub backend: &'static str,
    /// The workload's name.
    pub workload: &'static str,
    /// Our median rate.
    pub ours: f64,
    /// The baseline's median rate.
    pub baseline: f64,
    /// The unit of both rates.
    pub unit: &'static str,
    /// Anything else worth reading (peak memory, per-event time, gaps seen).
    pub note: String,
}

impl Outcome {
    /// ours / baseline.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        if self.baseline > 0.0 {
            self.ours / self.baseline
        } else {
            0.0
        }
    }
}

/// The median of some samples.
#[must_use]
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    match samples.len() {
        0 => 0.0,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

/// At most this many units per rate measurement, so that the in-memory stores stay small.
pub const MAX_UNITS: u64 = 100_000;

/// Units of work per second: calls `op` (which returns the units it did) until `budget` has
/// passed or [`MAX_UNITS`] are done, at least three times.
///
/// # Errors
/// The first error of `op`.
pub fn rate(budget: Duration, mut op: impl FnMut() -> R<u64>) -> R<f64> {
    let start = Instant::now();
    let mut units = 0u64;
    let mut calls = 0;
    while calls < 3 || (start.elapsed() < budget && units < MAX_UNITS) {
        units += op()?;
        calls += 1;
    }
    Ok(units as f64 / start.elapsed().as_secs_f64())
}

/// Units per second of one call of `op`.
///
/// # Errors
/// The error of `op`.
pub fn once(op: impl FnOnce() -> R<u64>) -> R<f64> {
    let start = Instant::now();
    let units = op()?;
    Ok(units as f64 / start.elapsed().as_secs_f64())
}

/// Runs `ours` and `baseline` alternately `reps` times; their medians.
///
/// # Errors
/// The first error of either.
pub fn paired(
    reps: usize,
    mut ours: impl FnMut() -> R<f64>,
    mut baseline: impl FnMut() -> R<f64>,
) -> R<(f64, f64)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        a.push(ours()?);
        b.push(baseline()?);
    }
    Ok((median(a), median(b)))
}

/// Bytes in MiB, for the notes.
#[must_use]
pub fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_table(outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<9} {:<16} {:>14} {:>14} {:<11} {:>7}  note",
        "backend", "workload", "ours", "baseline", "unit", "ratio"
    );
    for o in outcomes {
        println!(
            "{:<9} {:<16} {:>14.1} {:>14.1} {:<11} {:>7.3}  {}",
            o.backend,
            o.workload,
            o.ours,
            o.baseline,
            o.unit,
            o.ratio(),
            o.note
        );
    }
    println!();
    for o in outcomes {
        println!(
            "RESULT {} {} ours={:.1} baseline={:.1} unit={} ratio={:.3}",
            o.backend,
            o.workload,
            o.ours,
            o.baseline,
            o.unit,
            o.ratio()
        );
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: eventsourcing-bench [--quick] [--backend memory|sqlite|postgres|cassandra|all] [--only WORKLOAD,..]\n\
         PostgreSQL URL from EVENTSOURCING_TEST_POSTGRES_URL, Cassandra URL from EVENTSOURCING_TEST_CASSANDRA_URL"
    );
    std::process::exit(2)
}

fn main() {
    let mut quick = false;
    let mut backend = String::from("all");
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--backend" => backend = args.next().unwrap_or_else(|| usage()),
            s if s.starts_with("--backend=") => backend = s["--backend=".len()..].to_owned(),
            "--only" => {
                only = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(str::to_owned)
                    .collect();
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let backends: Vec<&str> = match backend.as_str() {
        "all" => vec!["memory", "sqlite", "postgres", "cassandra"],
        "memory" | "sqlite" | "postgres" | "cassandra" => vec![backend.as_str()],
        _ => usage(),
    };
    let mut params = Params::new(quick);
    params.only = only;
    println!(
        "eventsourcing-bench: mode {}, {} repetitions (median), {} cores",
        if quick { "quick" } else { "full" },
        params.reps,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    let mut outcomes = Vec::new();
    let mut failed = false;
    for name in backends {
        let start = Instant::now();
        let result = match name {
            "memory" => memory::run(&params, &mut outcomes)
                .and_then(|()| large_state::run(&params, &mut outcomes)),
            "sqlite" => sqlite_raw::run(&params, &mut outcomes),
            "cassandra" => cassandra_raw::run(&params, &mut outcomes),
            _ => postgres_raw::run(&params, &mut outcomes),
        };
        if let Err(error) = result {
            eprintln!("{name}: {error}");
            failed = true;
        }
        println!("{name}: done in {:.1} s", start.elapsed().as_secs_f64());
    }
    print_table(&outcomes);
    if failed {
        std::process::exit(1);
    }
}
