//! The framework's side of every workload, the same on every backend.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;

use crate::domain::{self, Ledger};
use crate::R;

/// Creates one ledger with its creation event and saves it: one transaction.
///
/// # Errors
/// Save errors.
pub fn save_one(app: &Application, i: u64) -> R<u64> {
    let mut ledger = domain::open(i);
    app.save(&mut ledger)?;
    Ok(1)
}

/// Records 100 postings on `ledger` and saves them in one append.
///
/// # Errors
/// Save errors.
pub fn append_batch(app: &Application, ledger: &mut Aggregate<Ledger>, next: &mut u64) -> R<u64> {
    for _ in 0..100 {
        domain::post(ledger, *next);
        *next += 1;
    }
    app.save(ledger)?;
    Ok(100)
}

/// Creates a ledger with `events` events, saved in appends of at most 1,000; its id.
///
/// # Errors
/// Save errors.
pub fn populate(app: &Application, i: u64, events: u64) -> R<Uuid> {
    let mut ledger = domain::open(i);
    let mut n = 1;
    while n < events {
        domain::post(&mut ledger, n);
        n += 1;
        if ledger.pending_events().len() >= 1000 {
            app.save(&mut ledger)?;
        }
    }
    app.save(&mut ledger)?;
    Ok(ledger.id())
}

/// Loads a ledger through the repository; the events it replayed.
///
/// # Errors
/// Load errors.
pub fn load(app: &Application, id: Uuid) -> R<u64> {
    let ledger: Aggregate<Ledger> = app.repository().get(id)?;
    black_box((ledger.total(), ledger.entries()));
    Ok(ledger.version())
}

/// Reads the first `limit` events through the notification log, `page` at a time.
///
/// # Errors
/// Backend errors.
pub fn scan(app: &Application, limit: u64, page: usize) -> R<u64> {
    let mut read = 0u64;
    let mut bytes = 0usize;
    for event in app.notification_log().iter(1, page) {
        let event = event?;
        bytes += event.payload.len();
        read += 1;
        if read == limit {
            break;
        }
    }
    black_box(bytes);
    Ok(read)
}

/// What a concurrent run measured.
#[derive(Debug, Clone, Copy)]
pub struct Concurrent {
    /// Events committed per second by all writers together.
    pub rate: f64,
    /// Events the follower saw, reading in position order while the writers ran.
    pub followed: u64,
    /// Events committed during the run.
    pub written: u64,
    /// Times the follower saw a position at or below its cursor (out of order).
    pub holes: u64,
    /// The median time of one write, in microseconds.
    pub p50_us: f64,
    /// The 99th percentile of one write's time, in microseconds.
    pub p99_us: f64,
}

/// For each instant of `commits`, the time to the first instant of `later` at or after it
/// (an hour when none came): the median and the 99th percentile, in microseconds.
#[must_use]
pub fn wait_quantiles(commits: &[Instant], later: &[Instant]) -> (f64, f64) {
    let waits: Vec<u32> = commits
        .iter()
        .map(|c| {
            later
                .iter()
                .find(|l| *l >= c)
                .map_or(Duration::from_secs(3600), |l| *l - *c)
        })
        .map(|wait| u32::try_from(wait.as_micros()).unwrap_or(u32::MAX))
        .collect();
    quantiles(waits)
}

/// The median and 99th percentile of `samples` (microseconds).
#[must_use]
pub fn quantiles(mut samples: Vec<u32>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((samples.len().saturating_sub(1)) as f64 * q).round() as usize;
        samples.get(i).map_or(0.0, |v| f64::from(*v))
    };
    (at(0.5), at(0.99))
}

/// Runs `writers` threads calling `write` on their own state (made by `make_writer`) for
/// `budget`, while one follower thread polls `poll(after)` for positions after its cursor.
/// The follower starts at `start()` (the highest position once the writers are set up) and
/// drains the log after the writers stop.
///
/// # Errors
/// The first error of any thread.
#[allow(clippy::too_many_arguments)]
pub fn concurrent<W, F>(
    writers: usize,
    budget: Duration,
    start: &(dyn Fn() -> R<u64> + Sync),
    make_writer: &(dyn Fn(usize) -> R<W> + Sync),
    write: &(dyn Fn(&mut W) -> R<u64> + Sync),
    mut follower: F,
    poll: &(dyn Fn(&mut F, u64) -> R<Vec<u64>> + Sync),
) -> R<Concurrent>
where
    F: Send,
{
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let ready = Barrier::new(writers + 1);
    let go = Barrier::new(writers + 2);
    let result = std::thread::scope(|scope| -> R<Concurrent> {
        let mut handles = Vec::new();
        for w in 0..writers {
            let (stop, written, ready, go) = (&stop, &written, &ready, &go);
            handles.push(scope.spawn(move || -> R<Vec<u32>> {
                let state = make_writer(w);
                ready.wait();
                go.wait();
                let mut state = state?;
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let n = write(&mut state)?;
                    times.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                    written.fetch_add(n, Ordering::Relaxed);
                }
                Ok(times)
            }));
        }
        ready.wait();
        let first = start();
        let follow = {
            let (done, go) = (&done, &go);
            scope.spawn(move || -> R<(u64, u64)> {
                go.wait();
                let start = first?;
                let (mut cursor, mut followed, mut holes) = (start, 0u64, 0u64);
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let positions = poll(&mut follower, cursor)?;
                    for p in &positions {
                        // Positions increase but need not be dense (PostgreSQL derives them
                        // from transaction ids): count only what breaks the order.
                        if *p <= cursor {
                            holes += 1;
                        }
                        cursor = *p;
                        followed += 1;
                    }
                    if positions.is_empty() {
                        if finished {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok((followed, holes))
            })
        };
        go.wait();
        let began = Instant::now();
        std::thread::sleep(budget);
        stop.store(true, Ordering::Relaxed);
        let mut first_error = None;
        let mut times = Vec::new();
        for handle in handles {
            match handle.join().map_err(|_| "writer panicked")? {
                Ok(mut t) => times.append(&mut t),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let elapsed = began.elapsed().as_secs_f64();
        done.store(true, Ordering::Release);
        let (followed, holes) = follow.join().map_err(|_| "follower panicked")??;
        if let Some(e) = first_error {
            return Err(e);
        }
        let written = written.load(Ordering::Relaxed);
        let (p50_us, p99_us) = quantiles(times);
        Ok(Concurrent {
            rate: written as f64 / elapsed,
            followed,
            written,
            holes,
            p50_us,
            p99_us,
        })
    });
    result
}

/// The workloads every backend runs the same way: save_one, append_batch100, load_10k,
/// snapshot_load and scan_all. `full` keeps snapshots; `events_only` reads the same storage
/// without them.
///
/// # Errors
/// The first error.
pub fn run_common(
    backend: &'static str,
    params: &crate::Params,
    full: &Application,
    events_only: &Application,
    raw: &mut dyn crate::raw::RawStore,
    outcomes: &mut Vec<crate::Outcome>,
) -> R<()> {
    use crate::{mib, once, paired, rate};
    let reps = params.reps;
    // Stream numbers: ours and the baseline each count their own.
    let mut ours_n = 1_000_000u64;
    let mut raw_n = 1_000_000u64;

    if params.wants("save_one") {
        let (ours, baseline) = save_rates(params, full, raw, &mut ours_n, &mut raw_n)?;
        push(
            outcomes,
            backend,
            "save_one",
            ours,
            baseline,
            "saves/s",
            String::new(),
        );
        println!("{backend}: save_one done");
    }

    if params.wants("append_batch100") {
        // append_batch100
        let mut ledger = domain::open(1);
        full.save(&mut ledger)?;
        let mut next = 1;
        raw_n += 1;
        let stream = crate::raw::populate(raw, raw_n, 1)?;
        let mut raw_version = 1;
        let (ours, baseline) = paired(
            reps,
            || rate(params.budget, || append_batch(full, &mut ledger, &mut next)),
            || {
                rate(params.budget, || {
                    raw.append(&stream, raw_version, 100)?;
                    raw_version += 100;
                    Ok(100)
                })
            },
        )?;
        push(
            outcomes,
            backend,
            "append_batch100",
            ours,
            baseline,
            "events/s",
            String::new(),
        );
        println!("{backend}: append_batch100 done");
    }

    // Scale curves: loading one aggregate of 1k and 100k events (10k is load_10k above), and
    // saving one more event on an aggregate of 1k, 10k and 100k events (a save must not grow
    // with the stream).
    for (size, load_name, save_name) in [
        (1_000u64, Some("load_1k"), "save_at_1k"),
        (10_000, None, "save_at_10k"),
        (100_000, Some("load_100k"), "save_at_100k"),
    ] {
        let load_wanted = load_name.is_some_and(|name| params.wants(name));
        if !load_wanted && !params.wants(save_name) {
            continue;
        }
        ours_n += 1;
        let id = populate(full, ours_n, size)?;
        raw_n += 1;
        let raw_stream = crate::raw::populate(raw, raw_n, size)?;
        if let Some(name) = load_name.filter(|_| load_wanted) {
            let (ours, baseline) = paired(
                reps,
                || once(|| load(full, id)),
                || {
                    once(|| {
                        let folded = raw.load(&raw_stream)?;
                        black_box(folded.total);
                        Ok(folded.events)
                    })
                },
            )?;
            push(
                outcomes,
                backend,
                name,
                ours,
                baseline,
                "events/s",
                format!("{size} events"),
            );
        }
        if params.wants(save_name) {
            let mut ledger: Aggregate<Ledger> = full.repository().get(id)?;
            let mut raw_version = size;
            let (ours, baseline) = paired(
                reps,
                || {
                    rate(params.budget / 4, || {
                        let next = ledger.version();
                        domain::post(&mut ledger, next);
                        full.save(&mut ledger)?;
                        Ok(1)
                    })
                },
                || {
                    rate(params.budget / 4, || {
                        raw.append(&raw_stream, raw_version, 1)?;
                        raw_version += 1;
                        Ok(1)
                    })
                },
            )?;
            push(
                outcomes,
                backend,
                save_name,
                ours,
                baseline,
                "saves/s",
                format!("one event on an aggregate of {size}+ events"),
            );
        }
        println!("{backend}: scale curve at {size} events done");
    }

    if params.wants("load_10k") {
        // load_10k
        let id = populate(full, 2, params.load_events)?;
        raw_n += 1;
        let raw_stream = crate::raw::populate(raw, raw_n, params.load_events)?;
        let (ours, baseline) = paired(
            reps,
            || once(|| load(full, id)),
            || {
                once(|| {
                    let folded = raw.load(&raw_stream)?;
                    black_box(folded.total);
                    Ok(folded.events)
                })
            },
        )?;
        let note = format!(
            "ours {:.3} us/event, baseline {:.3} us/event",
            1e6 / ours,
            1e6 / baseline
        );
        push(
            outcomes, backend, "load_10k", ours, baseline, "events/s", note,
        );
        println!("{backend}: load_10k done");
    }

    if params.wants("snapshot_load") {
        // snapshot_load: the same kind of aggregate, snapshotted at load_events, then 100 more.
        let id = populate(full, 3, params.load_events)?;
        full.take_snapshot::<Ledger>(id, None)?;
        let mut ledger: Aggregate<Ledger> = full.repository().get(id)?;
        for i in 0..params.after_snapshot {
            domain::post(&mut ledger, i);
        }
        full.save(&mut ledger)?;
        let (ours, baseline) = paired(
            reps,
            || {
                rate(params.budget / 2, || {
                    let (aggregate, report) = full.repository::<Ledger>().load(id, None)?;
                    black_box(aggregate.total());
                    if report.snapshot_version.is_none() {
                        return Err("snapshot_load did not use the snapshot".into());
                    }
                    Ok(1)
                })
            },
            || once(|| load(events_only, id).map(|_| 1)),
        )?;
        let note = format!(
            "baseline: our full replay of {} events",
            params.load_events + params.after_snapshot
        );
        push(
            outcomes,
            backend,
            "snapshot_load",
            ours,
            baseline,
            "loads/s",
            note,
        );
        println!("{backend}: snapshot_load done");
    }

    let growth = ["save_at_store_tenth", "save_at_store_full"];
    if params.wants("scan_all") || growth.iter().any(|w| params.wants(w)) {
        // scan_all: enough events in the log for the big scan, in appends of 1,000.
        // Count the events (positions are not dense on PostgreSQL, so `max_position` is not
        // a count).
        let mut have = 0u64;
        for event in full.notification_log().iter(1, 10_000) {
            event?;
            have += 1;
        }
        let mut i = 10;
        let mut total = have;
        let mut raw_total = raw.count()?;
        // The store grows in two steps, to a tenth of the big scan and to all of it, and a
        // save is measured at each (a save must not slow down as the store grows).
        for (step, workload) in [
            (params.scan_big / 10, "save_at_store_tenth"),
            (params.scan_big, "save_at_store_full"),
        ] {
            while total < step {
                populate(full, i, 1000)?;
                total += 1000;
                i += 1;
            }
            while raw_total < step {
                raw_n += 1;
                crate::raw::populate(raw, raw_n, 1000)?;
                raw_total += 1000;
            }
            if params.wants(workload) {
                let (ours, baseline) = save_rates(params, full, raw, &mut ours_n, &mut raw_n)?;
                let note =
                    format!("one event saved in a store of {total} events (baseline {raw_total})");
                push(outcomes, backend, workload, ours, baseline, "saves/s", note);
            }
        }
        println!("{backend}: scan data ready ({total} events, baseline {raw_total})");
        if !params.wants("scan_all") {
            return Ok(());
        }
        let n = params.scan_events;
        let (mut peak_ours, mut peak_raw) = (0usize, 0usize);
        let (ours, baseline) = paired(
            reps,
            || {
                let base = crate::alloc::reset_peak();
                let r = once(|| scan(full, n, params.page));
                peak_ours = peak_ours.max(crate::alloc::peak().saturating_sub(base));
                r
            },
            || {
                let base = crate::alloc::reset_peak();
                let r = once(|| raw.scan(n));
                peak_raw = peak_raw.max(crate::alloc::peak().saturating_sub(base));
                r
            },
        )?;
        let base = crate::alloc::reset_peak();
        let began = Instant::now();
        let read_big = scan(full, params.scan_big, params.page)?;
        let big_rate = read_big as f64 / began.elapsed().as_secs_f64();
        let big_peak = crate::alloc::peak().saturating_sub(base);
        let base = crate::alloc::reset_peak();
        let began = Instant::now();
        let raw_big = raw.scan(params.scan_big)?;
        let raw_big_rate = raw_big as f64 / began.elapsed().as_secs_f64();
        let raw_big_peak = crate::alloc::peak().saturating_sub(base);
        let note = format!(
            "{n} events; peak heap ours {:.2} MiB (baseline {:.2} MiB); \
             {read_big} events: ours {:.2} MiB at {:.0} events/s (baseline {raw_big}: {:.2} MiB \
             at {:.0} events/s)",
            mib(peak_ours),
            mib(peak_raw),
            mib(big_peak),
            big_rate,
            mib(raw_big_peak),
            raw_big_rate
        );
        push(
            outcomes, backend, "scan_all", ours, baseline, "events/s", note,
        );
        println!("{backend}: scan_all done");
    }
    Ok(())
}

/// `save_one`'s rates, ours and the baseline's, each saving new streams numbered after
/// `ours_n` and `raw_n`.
fn save_rates(
    params: &crate::Params,
    full: &Application,
    raw: &mut dyn crate::raw::RawStore,
    ours_n: &mut u64,
    raw_n: &mut u64,
) -> R<(f64, f64)> {
    use crate::{paired, rate};
    paired(
        params.reps,
        || {
            rate(params.budget, || {
                *ours_n += 1;
                save_one(full, *ours_n)
            })
        },
        || {
            rate(params.budget, || {
                *raw_n += 1;
                raw.save_one(*raw_n)?;
                Ok(1)
            })
        },
    )
}

/// Adds an outcome.
pub fn push(
    outcomes: &mut Vec<crate::Outcome>,
    backend: &'static str,
    workload: &'static str,
    ours: f64,
    baseline: f64,
    unit: &'static str,
    note: String,
) {
    outcomes.push(crate::Outcome {
        backend,
        workload,
        ours,
        baseline,
        unit,
        note,
    });
}
