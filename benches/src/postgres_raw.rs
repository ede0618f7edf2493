//! PostgreSQL: the framework's recorder (schema `bench_ours`) against raw `postgres` client
//! code on tables of the same shape in schema `bench_raw` (created by the recorder itself),
//! with the server's default `synchronous_commit` for both.

use std::hint::black_box;
use std::sync::Arc;

use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
use eventsourcing::prelude::*;
use postgres::{Client, NoTls, Statement};

use crate::domain::{self, Ledger};
use crate::ours::{self, push};
use crate::raw::{self, Folded, RawStore, Topics};
use crate::{median, Outcome, Params, R};

const OURS: &str = "bench_ours";
const RAW: &str = "bench_raw";

const INSERT: &str = "INSERT INTO bench_raw.events \
    (stream_id, version, event_id, topic, schema_version, \"timestamp\", payload) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A JSONB column read in binary as its JSON text, owned (what a reader keeps of
/// metadata), without parsing it.
#[derive(Debug)]
struct Jsonb(#[allow(dead_code)] Vec<u8>);

impl<'a> postgres::types::FromSql<'a> for Jsonb {
    fn from_sql(
        _: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // The binary JSONB format is a version byte (1) and the JSON text.
        match raw.split_first() {
            Some((1, text)) => Ok(Jsonb(text.to_vec())),
            _ => Err("unknown JSONB binary format".into()),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::JSONB
    }
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A row read by the scan, every column owned.
type OwnedRow = (
    i64,
    String,
    i64,
    uuid::Uuid,
    String,
    i32,
    i64,
    Vec<u8>,
    Option<Jsonb>,
);

/// Every column of an event row read into owned values, as a reader keeps them.
fn owned_row(row: &postgres::Row) -> R<OwnedRow> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
    ))
}

/// A raw client with its statements prepared once, as a long-running service keeps them:
/// binary parameters and columns, one autocommit statement per write, and the generic plan
/// that a prepared statement settles on after its first executions (forced here, so that the
/// few loads of a benchmark run do not measure the custom plans of the first five).
struct Raw {
    client: Client,
    insert: Statement,
    insert_many: Statement,
    load: Statement,
    scan: Statement,
    topics: Topics,
}

impl Raw {
    fn connect(url: &str) -> R<Self> {
        let mut client = Client::connect(url, NoTls)?;
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        let insert = client.prepare(INSERT)?;
        let insert_many = client.prepare(
            "INSERT INTO bench_raw.events \
             (stream_id, version, event_id, topic, schema_version, \"timestamp\", payload) \
             SELECT s, v, e, t, sv, ts, p FROM UNNEST($1::text[], $2::int8[], $3::uuid[], \
             $4::text[], $5::int4[], $6::int8[], $7::bytea[]) AS r(s, v, e, t, sv, ts, p)",
        )?;
        let load = client.prepare(
            "SELECT version, topic, \"timestamp\", payload FROM bench_raw.events \
             WHERE stream_id = $1 ORDER BY version",
        )?;
        let scan = client.prepare(
            "SELECT position, stream_id, version, event_id, topic, schema_version, \
             \"timestamp\", payload, metadata FROM bench_raw.events \
             ORDER BY position LIMIT $1",
        )?;
        Ok(Self {
            client,
            insert,
            insert_many,
            load,
            scan,
            topics: Topics::new(),
        })
    }

    fn insert_one(&mut self, stream: &str, version: u64, topic: &str, payload: &[u8]) -> R<()> {
        // One round trip: an autocommit statement is its own transaction.
        self.client.execute(
            &self.insert,
            &[
                &stream,
                &i64::try_from(version)?,
                &uuid::Uuid::now_v7(),
                &topic,
                &1i32,
                &micros_now(),
                &payload,
            ],
        )?;
        Ok(())
    }
}

impl RawStore for Raw {
    fn save_one(&mut self, i: u64) -> R<()> {
        let payload = raw::opened_payload(i)?;
        let topic = self.topics.opened;
        self.insert_one(&raw::last_stream(i), 1, topic, &payload)
    }

    fn append(&mut self, stream: &str, after: u64, n: u64) -> R<()> {
        let len = usize::try_from(n)?;
        let mut streams = Vec::with_capacity(len);
        let mut versions = Vec::with_capacity(len);
        let mut ids = Vec::with_capacity(len);
        let mut topics = Vec::with_capacity(len);
        let mut schema_versions = Vec::with_capacity(len);
        let mut timestamps = Vec::with_capacity(len);
        let mut payloads = Vec::with_capacity(len);
        for v in after + 1..=after + n {
            streams.push(stream);
            versions.push(i64::try_from(v)?);
            ids.push(uuid::Uuid::now_v7());
            topics.push(self.topics.posted);
            schema_versions.push(1i32);
            timestamps.push(micros_now());
            payloads.push(raw::posted_payload(v)?);
        }
        self.client.execute(
            &self.insert_many,
            &[
                &streams,
                &versions,
                &ids,
                &topics,
                &schema_versions,
                &timestamps,
                &payloads,
            ],
        )?;
        Ok(())
    }

    fn load(&mut self, stream: &str) -> R<Folded> {
        let rows = self.client.query(&self.load, &[&stream])?;
        let mut folded = Folded::default();
        for row in &rows {
            let version: i64 = row.try_get(0)?;
            let timestamp: i64 = row.try_get(2)?;
            black_box((version, timestamp));
            let topic: &str = row.try_get(1)?;
            let payload: &[u8] = row.try_get(3)?;
            folded.apply(raw::decode(&self.topics, topic, payload)?);
        }
        Ok(folded)
    }

    fn scan(&mut self, limit: u64) -> R<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = self.client.query_raw(&self.scan, [limit])?;
        let mut read = 0;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            black_box(&owned_row(&row)?);
            read += 1;
        }
        Ok(read)
    }

    fn count(&mut self) -> R<u64> {
        let n: i64 = self
            .client
            .query_one("SELECT count(*) FROM bench_raw.events", &[])?
            .try_get(0)?;
        Ok(u64::try_from(n)?)
    }
}

/// Runs the PostgreSQL workloads.
///
/// # Errors
/// The first error; a missing `EVENTSOURCING_TEST_POSTGRES_URL`.
pub fn run(params: &Params, outcomes: &mut Vec<Outcome>) -> R<()> {
    let url = std::env::var("EVENTSOURCING_TEST_POSTGRES_URL")
        .map_err(|_| "EVENTSOURCING_TEST_POSTGRES_URL is not set")?;
    let mut admin = Client::connect(&url, NoTls)?;
    admin.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {OURS} CASCADE; DROP SCHEMA IF EXISTS {RAW} CASCADE"
    ))?;
    let sync: String = admin
        .query_one("SHOW synchronous_commit", &[])?
        .try_get(0)?;
    println!("postgres: synchronous_commit = {sync} (server default, both sides)");
    // `EVENTSOURCING_BENCH_NOTIFY=off` measures appends without commit announcements.
    let notify = std::env::var("EVENTSOURCING_BENCH_NOTIFY").map_or(true, |v| v != "off");
    println!("postgres: notify_commits = {notify}");
    let config = |schema: &str| {
        PostgresConfig::new(url.as_str())
            .schema(schema)
            .pool_size(12)
            .notify_commits(notify)
    };
    let storage = Arc::new(PostgresRecorder::open(config(OURS))?);
    drop(PostgresRecorder::open(config(RAW))?);
    let full = Application::builder().storage(storage.clone()).build()?;
    let events_only = Application::builder().recorder(storage.clone()).build()?;
    let mut raw = Raw::connect(&url)?;
    ours::run_common("postgres", params, &full, &events_only, &mut raw, outcomes)?;
    if params.wants("concurrent_8") {
        concurrent(params, "concurrent_8", &full, &url, outcomes)?;
    }
    // The writers curve: 1 to 16 writers with a follower, one run each.
    for (writers, workload) in [
        (1, "writers_1"),
        (2, "writers_2"),
        (4, "writers_4"),
        (8, "writers_8"),
        (16, "writers_16"),
    ] {
        if params.wants(workload) || params.wants("writers") {
            let curve = Params {
                writers,
                reps: 1,
                ..params.clone()
            };
            concurrent(&curve, workload, &full, &url, outcomes)?;
        }
    }
    if params.wants("wake_latency") && notify {
        wake_latency(params, &full, &storage, &mut raw, &url, outcomes)?;
    }
    crate::followers::run(params, &url, notify, outcomes)?;
    drop((full, events_only, raw));
    admin.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {OURS} CASCADE; DROP SCHEMA IF EXISTS {RAW} CASCADE"
    ))?;
    Ok(())
}

/// Commit to wake-up of a listener on another connection: ours (`listen_for_commits`, the
/// recorder's coalescing notifier) against `NOTIFY` sent by hand right after each raw insert,
/// `LISTEN`ed on a raw connection. One save every 10 ms; reported as the inverse of the median
/// latency (higher is better), with p50 and p99 in the note.
fn wake_latency(
    params: &Params,
    app: &Application,
    storage: &PostgresRecorder,
    raw: &mut Raw,
    url: &str,
    outcomes: &mut Vec<Outcome>,
) -> R<()> {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let saves: u64 = if params.quick { 60 } else { 300 };
    // Ours.
    let (tx, rx) = mpsc::channel();
    let listener = storage.listen_for_commits(Duration::from_secs(60), move || {
        let _ = tx.send(Instant::now());
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = rx.try_iter().count();
    let mut commits = Vec::new();
    for i in 0..saves {
        std::thread::sleep(Duration::from_millis(10));
        let mut ledger = domain::open(8_000_000 + i);
        app.save(&mut ledger)?;
        commits.push(Instant::now());
    }
    std::thread::sleep(Duration::from_millis(200));
    let wakes: Vec<Instant> = rx.try_iter().collect();
    let (ours_p50, ours_p99) = ours::wait_quantiles(&commits, &wakes);
    drop(listener);

    // By hand: NOTIFY right after each insert, LISTEN on a raw connection.
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let mut listening = Client::connect(url, NoTls)?;
    listening.batch_execute("LISTEN bench_raw_wake")?;
    let waiter = std::thread::spawn(move || {
        use postgres::fallible_iterator::FallibleIterator;
        while !thread_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut notifications = listening.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(100));
            while let Ok(Some(_)) = iter.next() {
                let _ = tx.send(Instant::now());
            }
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut commits = Vec::new();
    for i in 0..saves {
        std::thread::sleep(Duration::from_millis(10));
        raw.save_one(8_000_000 + i)?;
        commits.push(Instant::now());
        raw.client.batch_execute("NOTIFY bench_raw_wake")?;
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = waiter.join();
    let wakes: Vec<Instant> = rx.try_iter().collect();
    let (raw_p50, raw_p99) = ours::wait_quantiles(&commits, &wakes);
    push(
        outcomes,
        "postgres",
        "wake_latency",
        1e6 / ours_p50,
        1e6 / raw_p50,
        "1/s (inverse median commit-to-wake)",
        format!(
            "commit to wake-up over {saves} saves: ours p50 {ours_p50:.0} µs p99 {ours_p99:.0} µs; \
             by hand p50 {raw_p50:.0} µs p99 {raw_p99:.0} µs"
        ),
    );
    Ok(())
}

fn concurrent(
    params: &Params,
    workload: &'static str,
    app: &Application,
    url: &str,
    outcomes: &mut Vec<Outcome>,
) -> R<()> {
    let (mut ours_rates, mut raw_rates) = (Vec::new(), Vec::new());
    let mut notes = Vec::new();
    let budget = params.concurrent_budget;
    for _ in 0..params.reps {
        let run_id = crate::next_run();
        let run = ours::concurrent(
            params.writers,
            budget,
            &|| Ok(app.notification_log().max_position()?),
            &|w| {
                let mut ledger = domain::open(9_000_000 + w as u64);
                app.save(&mut ledger)?;
                Ok((ledger, 0u64))
            },
            &|(ledger, i): &mut (Aggregate<Ledger>, u64)| {
                *i += 1;
                domain::post(ledger, *i);
                app.save(ledger)?;
                Ok(1)
            },
            (),
            &|(), after| {
                Ok(app
                    .notification_log()
                    .select(after + 1, 1000)?
                    .iter()
                    .filter_map(|e| e.position)
                    .collect())
            },
        )?;
        ours_rates.push(run.rate);
        let mut follower = Client::connect(url, NoTls)?;
        // The same work as ours: every column of the events read and owned, not only the
        // positions.
        let poll = follower.prepare(
            "SELECT position, stream_id, version, event_id, topic, schema_version, \
             \"timestamp\", payload, metadata FROM bench_raw.events WHERE position > $1 \
             ORDER BY position LIMIT 1000",
        )?;
        let base = ours::concurrent(
            params.writers,
            budget,
            &|| {
                let mut client = Client::connect(url, NoTls)?;
                let max: i64 = client
                    .query_one(
                        "SELECT COALESCE(max(position), 0) FROM bench_raw.events",
                        &[],
                    )?
                    .try_get(0)?;
                Ok(u64::try_from(max)?)
            },
            &|w| {
                let mut raw = Raw::connect(url)?;
                let stream = raw::last_stream(50_000_000 + (run_id * 100 + w) as u64);
                let topic = raw.topics.opened;
                raw.insert_one(&stream, 1, topic, &raw::opened_payload(1)?)?;
                Ok((raw, stream, 1u64))
            },
            &|(raw, stream, version): &mut (Raw, String, u64)| {
                *version += 1;
                let topic = raw.topics.posted;
                raw.insert_one(stream, *version, topic, &raw::posted_payload(*version)?)?;
                Ok(1)
            },
            (follower, poll),
            &|(client, poll), after| {
                let rows = client.query(&*poll, &[&i64::try_from(after)?])?;
                rows.iter()
                    .map(|row| Ok(u64::try_from(black_box(owned_row(row)?).0)?))
                    .collect()
            },
        )?;
        raw_rates.push(base.rate);
        notes.push(format!(
            "{} writers; save p50/p99 ours {:.0}/{:.0} µs, raw {:.0}/{:.0} µs; ours followed {}/{} out of order {}; raw followed {}/{} holes {}",
            params.writers, run.p50_us, run.p99_us, base.p50_us, base.p99_us,
            run.followed, run.written, run.holes, base.followed, base.written, base.holes
        ));
    }
    let note = notes.last().cloned().unwrap_or_default();
    push(
        outcomes,
        "postgres",
        workload,
        median(ours_rates),
        median(raw_rates),
        "events/s",
        note,
    );
    println!("postgres: {workload} done");
    Ok(())
}
