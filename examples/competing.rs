//! Competing instances of one process application, in three OS processes sharing one SQLite
//! upstream and one SQLite downstream: the partitions are spread over the three, and when one
//! instance stops (SIGTERM: it finishes its event and releases its leases), the other two take
//! its partitions over at their next heartbeat.
//!
//! `cargo run --example competing` (the instances are this program again, started with
//! `ES_COMPETING_*` variables; see `eventsourcing_examples::competing`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing::system::Notification;
use eventsourcing_examples::competing::{
    config_from_env, run_instance, CopyEvent, Ticker, TickerCommands,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("ES_COMPETING_UPSTREAM").is_some() {
        return run_instance(&config_from_env()?);
    }
    let dir = std::env::temp_dir().join(format!("eventsourcing-competing-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let upstream_url = format!("sqlite://{}", dir.join("tickers.db").display());
    let downstream_url = format!("sqlite://{}", dir.join("copies.db").display());
    let upstream = Application::open(&upstream_url)?;
    let downstream = Application::open(&downstream_url)?;

    let mut instances: Vec<Child> = (1..=3)
        .map(|n| start(n, &upstream_url, &downstream_url))
        .collect::<Result<_, _>>()?;
    let total = write_ticks(&upstream, 60, 5)?;
    println!("wrote {total} upstream events over 60 tickers");

    std::thread::sleep(Duration::from_millis(800));
    println!("-- stopping instance-2 (SIGTERM): its partitions move to the others");
    terminate(&instances[1])?;
    let _ = instances[1].wait();
    let more = write_ticks(&upstream, 30, 5)?;
    println!("wrote {more} more upstream events");

    let deadline = Instant::now() + Duration::from_secs(60);
    let (copies, by_instance) = loop {
        let (copies, by_instance) = count_copies(&downstream)?;
        if copies >= total + more || Instant::now() > deadline {
            break (copies, by_instance);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for child in [&instances[0], &instances[2]] {
        terminate(child)?;
    }
    for child in &mut instances {
        let _ = child.wait();
    }
    println!(
        "{copies} copies of {} upstream events, by instance: {by_instance:?}",
        total + more
    );
    let _ = std::fs::remove_dir_all(&dir);
    if copies == total + more {
        Ok(())
    } else {
        Err(format!("expected {} copies, found {copies}", total + more).into())
    }
}

/// Starts instance `n` (this program), echoing its status lines.
fn start(n: u32, upstream: &str, downstream: &str) -> std::io::Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .env("ES_COMPETING_UPSTREAM", upstream)
        .env("ES_COMPETING_DOWNSTREAM", downstream)
        .env("ES_COMPETING_INSTANCE", format!("instance-{n}"))
        .env("ES_COMPETING_PARTITIONS", "6")
        .env("ES_COMPETING_LEASE_TTL_MS", "600")
        .env("ES_COMPETING_WORK_MS", "5")
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut last = String::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // Only changes of the partitions held, not every report.
                let held = line
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_owned();
                if held != last || line.starts_with("STOPPED") {
                    println!("{line}");
                    last = held;
                }
            }
        });
    }
    Ok(child)
}

fn terminate(child: &Child) -> std::io::Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(drop)
}

fn write_ticks(app: &Application, tickers: u32, ticks: u32) -> Result<u64, ApplicationError> {
    let mut written = 0;
    for _ in 0..tickers {
        let mut ticker = Ticker::start();
        for _ in 0..ticks {
            ticker.tick();
        }
        written += u64::from(ticks) + 1;
        app.save(&mut ticker)?;
    }
    Ok(written)
}

/// The upstream events copied (each stream and version once: a second copy is an error) and
/// the copies made by each instance.
fn count_copies(
    app: &Application,
) -> Result<(u64, BTreeMap<String, u64>), Box<dyn std::error::Error>> {
    let mut copies = 0;
    let mut by_instance = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut from = 1;
    loop {
        let page = app.notification_log().select(from, 500)?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        for event in &page {
            let notification = Notification::new(event, app.event_store().mapper());
            if let Some(envelope) = notification.decode::<CopyEvent>()? {
                let CopyEvent::Made {
                    stream,
                    version,
                    instance,
                } = envelope.event;
                if !seen.insert((stream.clone(), version)) {
                    return Err(format!("version {version} of {stream} was copied twice").into());
                }
                copies += 1;
                *by_instance.entry(instance).or_insert(0) += 1;
            }
        }
        from = last + 1;
    }
    Ok((copies, by_instance))
}
