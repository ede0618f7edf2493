//! Followers on PostgreSQL: commit to apply (`commit_to_apply`) and competing instances
//! (`competing_1`, `competing_2`, `competing_4`).
//!
//! `commit_to_apply`: one upstream save every 10 ms; a process application in a background
//! runner, woken by the upstream's commit listener (LISTEN/NOTIFY), applies each event
//! downstream; the time from the upstream commit to the downstream commit (seen on the
//! downstream bus, which publishes after commit). By hand: an insert that notifies in the
//! same statement, and a consumer that LISTENs, selects the new rows and commits each one's
//! output with its tracking row. Reported as the inverse of the median latency.
//!
//! Competing instances of one process application on PostgreSQL (`competing_1`,
//! `competing_2`, `competing_4`): a policy that spends 1 ms on each upstream event, run by 1,
//! 2 and 4 instances (threads, each with its own connection pool, sharing one downstream
//! schema through leases), against the same number of hand-written workers that each take a
//! fixed share of the upstream (stream id modulo the workers, no leases, no rebalancing) and
//! commit each event's output and tracking row in one autocommit statement.
//!
//! Ours is timed from the writing of the upstream (every instance holding its share of the
//! partitions already) to the last event applied; the hand-written workers, which read
//! nothing, from their start; the rate is events per second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use eventsourcing::persistence::{BoxError, PostgresConfig, PostgresRecorder};
use eventsourcing::prelude::*;
use eventsourcing::system::{
    Competing, Notification, ProcessApplication, ProcessingContext, Runner, Upstream,
};
use postgres::{Client, NoTls};

use crate::ours::push;
use crate::{domain, Outcome, Params, R};

const WORK: Duration = Duration::from_millis(1);
const PARTITIONS: u32 = 16;

/// The follower workloads.
pub fn run(params: &Params, url: &str, notify: bool, outcomes: &mut Vec<Outcome>) -> R<()> {
    if params.wants("commit_to_apply") && notify {
        commit_to_apply(params, url, outcomes)?;
    }
    let events: u64 = if params.quick { 1200 } else { 4800 };
    for instances in [1usize, 2, 4] {
        let workload = match instances {
            1 => "competing_1",
            2 => "competing_2",
            _ => "competing_4",
        };
        if !params.wants(workload) {
            continue;
        }
        let ours = ours(url, instances, events)?;
        let by_hand = by_hand(url, instances, events)?;
        push(
            outcomes,
            "postgres",
            workload,
            ours,
            by_hand,
            "events/s",
            format!(
                "{instances} instance(s), {events} upstream events, 1 ms of work each, \
                 {PARTITIONS} partitions; ideal {} events/s",
                instances * 1000
            ),
        );
    }
    Ok(())
}

fn drop_schemas(url: &str, schemas: &[&str]) -> R<()> {
    let mut admin = Client::connect(url, NoTls)?;
    for schema in schemas {
        admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
    }
    Ok(())
}

/// Writes `events` upstream events over 64 ledgers.
fn write_upstream(app: &Application, events: u64) -> R<()> {
    let mut ledgers: Vec<_> = (0..64).map(|i| domain::open(7_000_000 + i)).collect();
    for i in 0..events.saturating_sub(64) {
        let index = usize::try_from(i % 64)?;
        domain::post(&mut ledgers[index], i);
    }
    for ledger in &mut ledgers {
        app.save(ledger)?;
    }
    Ok(())
}

fn ours(url: &str, instances: usize, events: u64) -> R<f64> {
    let (up, down) = ("bench_competing_up", "bench_competing_down");
    drop_schemas(url, &[up, down])?;
    let open = |schema: &str| -> R<Application> {
        let notify = std::env::var("BENCH_DOWN_NOTIFY").is_ok();
        let recorder = PostgresRecorder::open(
            PostgresConfig::new(url)
                .schema(schema)
                .pool_size(2)
                .notify_commits(notify),
        )?;
        Ok(Application::builder().storage(Arc::new(recorder)).build()?)
    };
    let upstream = open(up)?;
    let counter = open(down)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Policy runs, counted without touching the store while measuring.
    let applied = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let spread = Arc::new(Barrier::new(instances + 1));
    let mut threads = Vec::new();
    for n in 0..instances {
        let count = Arc::clone(&applied);
        let mut process = ProcessApplication::new(
            open(down)?,
            Upstream::application("upstream", &upstream),
            move |event: &Notification<'_>,
                  ctx: &mut ProcessingContext<'_>|
                  -> Result<(), BoxError> {
                std::thread::sleep(WORK);
                let mut ledger = domain::open(event.position());
                ctx.save(&mut ledger)?;
                count.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )
        .named("bench-copier")
        .competing(
            Competing::new(PARTITIONS)
                .owner(format!("bench-{n}"))
                .lease_ttl(Duration::from_secs(3)),
        );
        let (stop, spread) = (Arc::clone(&stop), Arc::clone(&spread));
        let share = usize::try_from(PARTITIONS)? / instances;
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            // Take the share before any event is written, then start together.
            while process.partitions_held().len() != share {
                process.pull().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(10));
            }
            spread.wait();
            while !stop.load(Ordering::Relaxed) {
                if process.pull().map_err(|e| e.to_string())? == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            process.release_leases().map_err(|e| e.to_string())
        }));
    }
    // Every instance holds its share before the first event is written: the time runs from
    // the writing of the upstream to the last event applied.
    spread.wait();
    let start = Instant::now();
    write_upstream(&upstream, events)?;
    let deadline = start + Duration::from_secs(120);
    while applied.load(Ordering::Relaxed) < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().map_err(|_| "an instance panicked")??;
    }
    let copied = counter
        .notification_log()
        .select(1, usize::try_from(events)? + 10)?
        .len();
    if copied as u64 != events {
        return Err(format!("{copied} copies of {events} events").into());
    }
    drop((upstream, counter));
    drop_schemas(url, &[up, down])?;
    #[allow(clippy::cast_precision_loss)]
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// `instances` workers, each applying the upstream events of its streams (stream id hash
/// modulo the workers): 1 ms of work, then the output row and the tracking row in one
/// autocommit statement (one round trip), as a careful hand-written consumer does.
fn by_hand(url: &str, instances: usize, events: u64) -> R<f64> {
    let schema = "bench_competing_raw";
    drop_schemas(url, &[schema])?;
    let mut admin = Client::connect(url, NoTls)?;
    admin.batch_execute(&format!(
        "CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.events (position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
           stream_id TEXT NOT NULL, version BIGINT NOT NULL, payload BYTEA NOT NULL, \
           UNIQUE (stream_id, version)); \
         CREATE TABLE {schema}.tracking (worker INT NOT NULL, position BIGINT NOT NULL, \
           PRIMARY KEY (worker, position));"
    ))?;
    // The upstream, already in memory: the hand-written side reads nothing.
    let upstream: Vec<(String, u64)> = (0..events)
        .map(|i| (format!("up-{}", i % 64), i + 1))
        .collect();
    let upstream = Arc::new(upstream);
    let start_line = Arc::new(Barrier::new(instances + 1));
    let mut threads = Vec::new();
    for worker in 0..instances {
        let (upstream, start_line) = (Arc::clone(&upstream), Arc::clone(&start_line));
        let url = url.to_owned();
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let run = || -> R<()> {
                let mut client = Client::connect(&url, NoTls)?;
                // The output and the tracking row in one autocommit statement.
                let apply = client.prepare(&format!(
                    "WITH e AS (INSERT INTO {schema}.events (stream_id, version, payload) \
                     VALUES ($1, 1, $2)) INSERT INTO {schema}.tracking (worker, position) \
                     VALUES ($3, $4)"
                ))?;
                let worker_id = i32::try_from(worker)?;
                start_line.wait();
                for (stream, position) in upstream.iter() {
                    let hash = stream
                        .bytes()
                        .fold(0usize, |h, b| h.wrapping_mul(31) + b as usize);
                    if hash % instances != worker {
                        continue;
                    }
                    std::thread::sleep(WORK);
                    let id = format!("copy-{position}");
                    let payload = b"{\"copied\":true}".as_slice();
                    let position = i64::try_from(*position)?;
                    client.execute(&apply, &[&id, &payload, &worker_id, &position])?;
                }
                Ok(())
            };
            run().map_err(|e| e.to_string())
        }));
    }
    let start = Instant::now();
    start_line.wait();
    for thread in threads {
        thread.join().map_err(|_| "a worker panicked")??;
    }
    let elapsed = start.elapsed();
    drop_schemas(url, &[schema])?;
    #[allow(clippy::cast_precision_loss)]
    Ok(events as f64 / elapsed.as_secs_f64())
}

fn commit_to_apply(params: &Params, url: &str, outcomes: &mut Vec<Outcome>) -> R<()> {
    let saves: u64 = if params.quick { 60 } else { 300 };
    let (up, down) = ("bench_apply_up", "bench_apply_down");
    drop_schemas(url, &[up, down])?;
    let up_recorder = Arc::new(PostgresRecorder::open(
        PostgresConfig::new(url)
            .schema(up)
            .pool_size(2)
            .notify_commits(true),
    )?);
    let upstream = Application::builder()
        .storage(up_recorder.clone())
        .build()?;
    let down_recorder = PostgresRecorder::open(PostgresConfig::new(url).schema(down).pool_size(2))?;
    let downstream = Application::builder()
        .storage(Arc::new(down_recorder))
        .build()?;
    let (tx, rx) = mpsc::channel();
    let _subscription = downstream.bus().subscribe(move |_| {
        let _ = tx.send(Instant::now());
        Ok(())
    });
    let process = ProcessApplication::new(
        downstream.clone(),
        Upstream::application("upstream", &upstream),
        |event: &Notification<'_>, ctx: &mut ProcessingContext<'_>| -> Result<(), BoxError> {
            let mut ledger = domain::open(event.position());
            ctx.save(&mut ledger)?;
            Ok(())
        },
    );
    // A poll far longer than the saves' spacing: only the wake-ups make it prompt.
    let handle = Runner::new().with(process).spawn(Duration::from_secs(5))?;
    let waker = handle.waker();
    let listener = up_recorder.listen_for_commits(Duration::from_secs(60), move || waker.wake());
    std::thread::sleep(Duration::from_millis(300));
    let _ = rx.try_iter().count();
    let mut commits = Vec::new();
    for i in 0..saves {
        std::thread::sleep(Duration::from_millis(10));
        let mut ledger = domain::open(6_000_000 + i);
        upstream.save(&mut ledger)?;
        commits.push(Instant::now());
    }
    std::thread::sleep(Duration::from_millis(300));
    let applied: Vec<Instant> = rx.try_iter().collect();
    let (ours_p50, ours_p99) = crate::ours::wait_quantiles(&commits, &applied);
    drop(listener);
    handle.stop()?;
    drop((upstream, downstream, up_recorder));
    drop_schemas(url, &[up, down])?;

    // By hand.
    let schema = "bench_apply_raw";
    drop_schemas(url, &[schema])?;
    let mut admin = Client::connect(url, NoTls)?;
    admin.batch_execute(&format!(
        "CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.up (position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
           stream_id TEXT NOT NULL, payload BYTEA NOT NULL); \
         CREATE TABLE {schema}.down (id BIGINT PRIMARY KEY, payload BYTEA NOT NULL); \
         CREATE TABLE {schema}.tracking (position BIGINT PRIMARY KEY);"
    ))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let consumer = {
        let (stop, url) = (Arc::clone(&stop), url.to_owned());
        std::thread::spawn(move || -> Result<(), String> {
            let run = || -> R<()> {
                use postgres::fallible_iterator::FallibleIterator;
                let mut listening = Client::connect(&url, NoTls)?;
                listening.batch_execute("LISTEN bench_apply")?;
                let mut client = Client::connect(&url, NoTls)?;
                let select = client.prepare(&format!(
                    "SELECT position, payload FROM {schema}.up WHERE position > $1 ORDER BY position"
                ))?;
                // The output and the tracking row in one autocommit statement: one round trip.
                let apply = client.prepare(&format!(
                    "WITH d AS (INSERT INTO {schema}.down (id, payload) VALUES ($1, $2)) \
                     INSERT INTO {schema}.tracking VALUES ($1)"
                ))?;
                let mut last = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let woken = listening
                        .notifications()
                        .timeout_iter(Duration::from_millis(100))
                        .next()?
                        .is_some();
                    if !woken {
                        continue;
                    }
                    for row in client.query(&select, &[&last])? {
                        let position: i64 = row.try_get(0)?;
                        let payload: Vec<u8> = row.try_get(1)?;
                        client.execute(&apply, &[&position, &payload])?;
                        let _ = tx.send(Instant::now());
                        last = position;
                    }
                }
                Ok(())
            };
            run().map_err(|e| e.to_string())
        })
    };
    let mut writer = Client::connect(url, NoTls)?;
    // The insert and its notification in one statement: one round trip, delivered at commit.
    let insert = writer.prepare(&format!(
        "WITH i AS (INSERT INTO {schema}.up (stream_id, payload) VALUES ($1, $2) RETURNING position) \
         SELECT pg_notify('bench_apply', position::text) FROM i"
    ))?;
    std::thread::sleep(Duration::from_millis(200));
    let mut commits = Vec::new();
    for i in 0..saves {
        std::thread::sleep(Duration::from_millis(10));
        let stream = format!("raw-{i}");
        writer.execute(&insert, &[&stream, &crate::raw::opened_payload(i)?])?;
        commits.push(Instant::now());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    consumer.join().map_err(|_| "the consumer panicked")??;
    let applied: Vec<Instant> = rx.try_iter().collect();
    let (raw_p50, raw_p99) = crate::ours::wait_quantiles(&commits, &applied);
    drop_schemas(url, &[schema])?;
    push(
        outcomes,
        "postgres",
        "commit_to_apply",
        1e6 / ours_p50,
        1e6 / raw_p50,
        "1/s (inverse median commit-to-apply)",
        format!(
            "upstream commit to downstream commit over {saves} saves: ours p50 {ours_p50:.0} µs \
             p99 {ours_p99:.0} µs; by hand p50 {raw_p50:.0} µs p99 {raw_p99:.0} µs"
        ),
    );
    Ok(())
}
