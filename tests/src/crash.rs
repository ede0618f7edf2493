//! Crash consistency: a child process appends batches and is killed with SIGKILL at random
//! points; after every kill the store must hold every acknowledged batch, whole, with
//! contiguous versions and increasing positions.
//!
//! The child is the test binary itself, re-invoked with [`WRITER_ENV`] set so that its
//! `writer_entry` test runs [`run_writer`] instead of returning at once. It prints one
//! `ACK <batch id> <events>` line (flushed) after each append returns, so the parent knows
//! what must survive. [`WriterMode`] also offers two deliberately broken writers, used to
//! prove that [`check_store`] catches a torn batch and a lost acknowledged batch.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventsourcing::domain::Metadata;
use eventsourcing::persistence::{
    EventQuery, NotificationQuery, PersistenceError, Storage, StoredEvent, StreamAppend,
};
use uuid::Uuid;

/// Set (to anything) in the child: run the writer.
pub const WRITER_ENV: &str = "ES_CRASH_WRITER";
/// The store the child writes to: `sqlite:PATH`, `postgres:SCHEMA` or `cassandra:KEYSPACE`
/// (the server URLs come from [`crate::POSTGRES_URL_ENV`] and [`crate::CASSANDRA_URL_ENV`]).
pub const STORE_ENV: &str = "ES_CRASH_STORE";
/// The writer mode: `correct`, `half-batch` or `ack-first`.
pub const MODE_ENV: &str = "ES_CRASH_MODE";
/// When set, tests run their long versions (many more cycles, inputs and faults).
pub const LONG_ENV: &str = "EVENTSOURCING_LONG";

/// Whether the long versions were asked for.
#[must_use]
pub fn long() -> bool {
    std::env::var_os(LONG_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// `short` normally, `long` under [`LONG_ENV`].
#[must_use]
pub fn scale(short: usize, long_value: usize) -> usize {
    if long() {
        long_value
    } else {
        short
    }
}

/// How the child writes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterMode {
    /// One atomic append per batch, acknowledged after it returns.
    Correct,
    /// BROKEN: one append (one transaction) per stream of the batch: a kill can tear it.
    HalfBatch,
    /// BROKEN: acknowledges the batch before appending it: a kill can lose an acknowledged
    /// batch.
    AckFirst,
}

impl WriterMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Correct => "correct",
            Self::HalfBatch => "half-batch",
            Self::AckFirst => "ack-first",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "half-batch" => Self::HalfBatch,
            "ack-first" => Self::AckFirst,
            _ => Self::Correct,
        }
    }
}

/// A small xorshift generator: enough randomness for kill points and batch shapes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id (printed by callers for reproduction).
    #[must_use]
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let low = u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0);
        Self::seeded(low ^ (u64::from(std::process::id()) << 32))
    }

    /// A generator from `seed`.
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The streams every writer of one run appends to.
#[must_use]
pub fn stream_names() -> Vec<String> {
    (0..5).map(|i| format!("crash-stream-{i}")).collect()
}

fn payload(batch: Uuid, events: usize, index: usize) -> Vec<u8> {
    format!(r#"{{"batch":"{batch}","n":{events},"i":{index}}}"#).into_bytes()
}

/// The child's loop: append random batches until killed. Never returns normally.
///
/// # Panics
/// On any store error (the parent sees the child exit by itself and fails the run).
pub fn run_writer(store: &dyn Storage) {
    let mode = WriterMode::parse(&std::env::var(MODE_ENV).unwrap_or_default());
    let streams = stream_names();
    let mut versions: Vec<u64> = streams
        .iter()
        .map(|s| {
            store
                .select_events(s, &EventQuery::all().descending().limit(1))
                .expect("read the stream head")
                .first()
                .map_or(0, |e| e.version)
        })
        .collect();
    let mut rng = Rng::from_entropy();
    let mut out = std::io::stdout();
    // A store without a global log (Cassandra) appends to one stream at a time.
    let streams_per_batch = if crate::conformance::has_global_log(store) {
        3
    } else {
        0
    };
    loop {
        let batch_id = Uuid::now_v7();
        let mut chosen: Vec<usize> = Vec::new();
        for _ in 0..=rng.below(streams_per_batch) {
            let s = usize::try_from(rng.below(streams.len() as u64)).unwrap_or(0);
            if !chosen.contains(&s) {
                chosen.push(s);
            }
        }
        let counts: Vec<usize> = chosen
            .iter()
            .map(|_| 1 + usize::try_from(rng.below(4)).unwrap_or(0))
            .collect();
        let total: usize = counts.iter().sum();
        let mut index = 0;
        let batch: Vec<StreamAppend> = chosen
            .iter()
            .zip(&counts)
            .map(|(&s, &count)| StreamAppend {
                stream_id: streams[s].clone(),
                expected_version: versions[s],
                events: (1..=count as u64)
                    .map(|k| {
                        index += 1;
                        StoredEvent {
                            stream_id: streams[s].clone(),
                            version: versions[s] + k,
                            topic: "Crash.Appended".into(),
                            schema_version: 1,
                            payload: payload(batch_id, total, index),
                            metadata: Metadata::new(),
                            position: None,
                        }
                    })
                    .collect(),
            })
            .collect();
        let ack = |out: &mut std::io::Stdout| {
            writeln!(out, "ACK {batch_id} {total}").expect("write ack");
            out.flush().expect("flush ack");
        };
        match mode {
            WriterMode::Correct => {
                store.append(&batch, None).expect("append");
                ack(&mut out);
            }
            WriterMode::HalfBatch => {
                // Each stream's events in two appends: a kill can tear the batch even when
                // it has one stream.
                for part in &batch {
                    let (first, rest) = part.events.split_at(part.events.len() / 2);
                    let mut expected = part.expected_version;
                    for events in [first, rest].into_iter().filter(|e| !e.is_empty()) {
                        let append = StreamAppend {
                            stream_id: part.stream_id.clone(),
                            expected_version: expected,
                            events: events.to_vec(),
                        };
                        store.append(&[append], None).expect("append");
                        expected += events.len() as u64;
                    }
                }
                ack(&mut out);
            }
            WriterMode::AckFirst => {
                ack(&mut out);
                store.append(&batch, None).expect("append");
            }
        }
        for (&s, &count) in chosen.iter().zip(&counts) {
            versions[s] += count as u64;
        }
    }
}

/// What one check of the store found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Survey {
    /// Events in the store.
    pub events: usize,
    /// Whole batches in the store.
    pub batches: usize,
}

/// Checks the store after a crash: positions strictly increase; each stream's versions run
/// 1, 2, 3... in position order; every batch found is whole; every acknowledged batch is
/// there.
///
/// # Errors
/// A description of the first violation.
pub fn check_store(store: &dyn Storage, acked: &HashMap<Uuid, usize>) -> Result<Survey, String> {
    let all = match store.select_notifications(&NotificationQuery::new(1, usize::MAX >> 1)) {
        Ok(all) => all,
        // No global log (Cassandra): the writer's streams one after the other.
        Err(PersistenceError::Unsupported { .. }) => {
            let mut all = Vec::new();
            for stream in stream_names() {
                all.extend(
                    store
                        .select_events(&stream, &EventQuery::all())
                        .map_err(|e| format!("reading stream {stream} failed: {e}"))?,
                );
            }
            all
        }
        Err(e) => return Err(format!("reading the log failed: {e}")),
    };
    let mut last = 0;
    let mut heads: BTreeMap<&str, u64> = BTreeMap::new();
    let mut batches: HashMap<Uuid, (usize, usize)> = HashMap::new();
    for event in &all {
        let position = match event.position {
            Some(position) => {
                if position <= last {
                    return Err(format!("position {position} after {last}"));
                }
                last = position;
                position
            }
            None if store.max_position().is_err() => 0,
            None => return Err("an event without a position".into()),
        };
        let head = heads.entry(event.stream_id.as_str()).or_insert(0);
        if event.version != *head + 1 {
            return Err(format!(
                "stream {} jumps from version {} to {}",
                event.stream_id, head, event.version
            ));
        }
        *head = event.version;
        let value: serde_json::Value = serde_json::from_slice(&event.payload)
            .map_err(|e| format!("payload at position {position} is not JSON: {e}"))?;
        let batch = value["batch"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| format!("payload at position {position} has no batch id"))?;
        let n = value["n"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("payload at position {position} has no count"))?;
        let entry = batches.entry(batch).or_insert((n, 0));
        entry.1 += 1;
    }
    for (batch, (n, found)) in &batches {
        if n != found {
            return Err(format!(
                "TORN BATCH {batch}: {found} of its {n} events are stored"
            ));
        }
    }
    for (batch, n) in acked {
        match batches.get(batch) {
            Some((_, found)) if found == n => {}
            Some((_, found)) => {
                return Err(format!(
                    "acknowledged batch {batch} has {found} of its {n} events"
                ))
            }
            None => return Err(format!("LOST acknowledged batch {batch} ({n} events)")),
        }
    }
    Ok(Survey {
        events: all.len(),
        batches: batches.len(),
    })
}

/// The totals of a run of kill cycles.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrashReport {
    /// Cycles run (one child killed and the store checked, per cycle).
    pub cycles: usize,
    /// Batches acknowledged over all cycles.
    pub acked_batches: usize,
    /// Events acknowledged over all cycles.
    pub acked_events: usize,
    /// The last survey of the store.
    pub survey: Survey,
}

/// Runs `cycles` kill cycles: spawn the writer (this test binary, running its
/// `writer_entry` test) on `store_spec`, let it acknowledge a random number of batches, kill
/// it with SIGKILL, then open the store with `open` and run [`check_store`] and `extra`
/// (e.g. SQLite's integrity check).
///
/// # Errors
/// `Err((cycle, violation))` at the first cycle whose check fails.
///
/// # Panics
/// When the child cannot be spawned or exits by itself (it must be killed).
pub fn kill_cycles(
    store_spec: &str,
    mode: WriterMode,
    cycles: usize,
    open: &dyn Fn() -> std::sync::Arc<dyn Storage>,
    extra: &dyn Fn() -> Result<(), String>,
) -> Result<CrashReport, (usize, String)> {
    let exe = std::env::current_exe().expect("the test binary");
    let mut rng = Rng::from_entropy();
    let mut acked: HashMap<Uuid, usize> = HashMap::new();
    let mut report = CrashReport::default();
    for cycle in 1..=cycles {
        let mut child = Command::new(&exe)
            // A substring filter, not `--exact`: the test's path depends on the module that
            // holds it (`crash::writer_entry`), and no other test has this name.
            .args(["writer_entry", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, "1")
            .env(STORE_ENV, store_spec)
            .env(MODE_ENV, mode.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout);
        let target = rng.below(12);
        let mut seen = 0;
        let mut line = String::new();
        let started = Instant::now();
        let mut record = |line: &str, acked: &mut HashMap<Uuid, usize>| -> bool {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                return false;
            }
            let id = parts.next().and_then(|s| Uuid::parse_str(s).ok());
            let n = parts.next().and_then(|s| s.parse::<usize>().ok());
            if let (Some(id), Some(n)) = (id, n) {
                acked.insert(id, n);
                report.acked_batches += 1;
                report.acked_events += n;
                return true;
            }
            false
        };
        while seen < target && started.elapsed() < Duration::from_secs(20) {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if record(&line, &mut acked) {
                        seen += 1;
                    }
                }
            }
        }
        // A random extra moment, so that the kill lands anywhere in the next batch.
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        let _ = child.kill();
        let mut rest = String::new();
        let _ = lines.read_to_string(&mut rest);
        for line in rest.lines() {
            record(line, &mut acked);
        }
        let status = child.wait().expect("wait for the writer");
        if status.code().is_some() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("the writer exited by itself ({status}) in cycle {cycle}:\n{rest}\n{err}");
        }
        let store = open();
        let survey = check_store(store.as_ref(), &acked).map_err(|v| (cycle, v))?;
        drop(store);
        extra().map_err(|v| (cycle, v))?;
        report.cycles = cycle;
        report.survey = survey;
    }
    Ok(report)
}

/// Whether an error is the typed storage error a fault should produce.
#[must_use]
pub fn is_storage_fault(error: &PersistenceError) -> bool {
    matches!(
        error,
        PersistenceError::StorageFull { .. }
            | PersistenceError::ReadOnly { .. }
            | PersistenceError::Busy { .. }
            | PersistenceError::Unavailable { .. }
    )
}
