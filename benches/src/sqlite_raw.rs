//! SQLite: the framework's recorder against raw `rusqlite` on a separate database file with
//! the same schema (created by the recorder itself) and the same pragmas (WAL, synchronous
//! FULL, the same busy timeout, `BEGIN IMMEDIATE` write transactions).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use eventsourcing::persistence::{SqliteConfig, SqliteRecorder};
use eventsourcing::prelude::*;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::domain::{self, Ledger};
use crate::ours::{self, push};
use crate::raw::{self, Folded, RawStore, Topics};
use crate::{median, Outcome, Params, R};

const INSERT: &str = "INSERT INTO events \
    (stream_id, version, event_id, topic, schema_version, timestamp, payload, metadata) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)";

/// A row read by the scan, every column owned.
type OwnedRow = (
    i64,
    String,
    i64,
    Vec<u8>,
    String,
    i64,
    i64,
    Vec<u8>,
    Option<String>,
);

/// A raw connection to the baseline database.
struct Raw {
    conn: Connection,
    topics: Topics,
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Opens a connection with the recorder's pragmas (WAL is a property of the file).
fn connect(path: &Path) -> R<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(SqliteConfig::DEFAULT_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("baseline journal mode is {mode}, not WAL").into());
    }
    Ok(conn)
}

fn insert_one(
    conn: &mut Connection,
    stream: &str,
    version: u64,
    topic: &str,
    payload: &[u8],
) -> R<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(INSERT)?.execute(params![
        stream,
        i64::try_from(version)?,
        uuid::Uuid::now_v7().as_bytes().as_slice(),
        topic,
        1i64,
        micros_now(),
        payload,
    ])?;
    tx.commit()?;
    Ok(())
}

impl RawStore for Raw {
    fn save_one(&mut self, i: u64) -> R<()> {
        let payload = raw::opened_payload(i)?;
        insert_one(
            &mut self.conn,
            &raw::last_stream(i),
            1,
            self.topics.opened,
            &payload,
        )
    }

    fn append(&mut self, stream: &str, after: u64, n: u64) -> R<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for v in after + 1..=after + n {
                insert.execute(params![
                    stream,
                    i64::try_from(v)?,
                    uuid::Uuid::now_v7().as_bytes().as_slice(),
                    self.topics.posted,
                    1i64,
                    micros_now(),
                    raw::posted_payload(v)?,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn load(&mut self, stream: &str) -> R<Folded> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT version, topic, timestamp, payload FROM events \
             WHERE stream_id = ?1 ORDER BY version",
        )?;
        let mut rows = stmt.query([stream])?;
        let mut folded = Folded::default();
        while let Some(row) = rows.next()? {
            let version: i64 = row.get(0)?;
            let timestamp: i64 = row.get(2)?;
            black_box((version, timestamp));
            let topic = row.get_ref(1)?.as_str()?;
            let payload = row.get_ref(3)?.as_blob()?;
            folded.apply(raw::decode(&self.topics, topic, payload)?);
        }
        Ok(folded)
    }

    fn scan(&mut self, limit: u64) -> R<u64> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT position, stream_id, version, event_id, topic, schema_version, timestamp, \
             payload, metadata FROM events ORDER BY position LIMIT ?1",
        )?;
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut read = 0;
        while let Some(row) = rows.next()? {
            // Owned values, as the notification API returns them.
            let owned: OwnedRow = (
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
            );
            black_box(&owned);
            read += 1;
        }
        Ok(read)
    }

    fn count(&mut self) -> R<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        Ok(u64::try_from(n)?)
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the SQLite workloads.
///
/// # Errors
/// The first error.
pub fn run(params: &Params, outcomes: &mut Vec<Outcome>) -> R<()> {
    let dir =
        Scratch(std::env::temp_dir().join(format!("eventsourcing-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let ours_path = dir.0.join("ours.db");
    let raw_path = dir.0.join("raw.db");
    println!(
        "sqlite: files in {} (WAL, synchronous FULL for both)",
        dir.0.display()
    );
    let storage = Arc::new(SqliteRecorder::open(SqliteConfig::new(&ours_path))?);
    // The baseline's schema and WAL mode come from the recorder itself, then it is closed.
    drop(SqliteRecorder::open(SqliteConfig::new(&raw_path))?);
    let full = Application::builder().storage(storage.clone()).build()?;
    let events_only = Application::builder().recorder(storage).build()?;
    let mut raw = Raw {
        conn: connect(&raw_path)?,
        topics: Topics::new(),
    };
    ours::run_common("sqlite", params, &full, &events_only, &mut raw, outcomes)?;
    if params.wants("concurrent_8") {
        concurrent(
            params,
            "concurrent_8",
            &full,
            &raw_path,
            &raw.topics,
            outcomes,
        )?;
    }
    // The writers curve with group commit: 1 to 8 writers, one run each.
    for (writers, workload) in [
        (1, "writers_1"),
        (2, "writers_2"),
        (4, "writers_4"),
        (8, "writers_8"),
    ] {
        if params.wants(workload) || params.wants("writers") {
            let curve = Params {
                writers,
                reps: 1,
                ..params.clone()
            };
            concurrent(&curve, workload, &full, &raw_path, &raw.topics, outcomes)?;
        }
    }
    Ok(())
}

/// One save waiting for the committer: its row and where to send the outcome.
type Request = (
    String,
    u64,
    &'static str,
    Vec<u8>,
    mpsc::Sender<Result<(), String>>,
);

/// A writer of the baseline: where to send its rows, where its answers come, its stream and
/// version.
type GroupWriter = (
    mpsc::Sender<Request>,
    mpsc::Sender<Result<(), String>>,
    mpsc::Receiver<Result<(), String>>,
    String,
    u64,
);

/// The best way by hand to commit concurrent saves on SQLite: the writers hand their rows to
/// one committer thread, which takes every row queued meanwhile into one transaction (one
/// fsync) and answers each writer after the commit.
fn group_commit_baseline(
    params: &Params,
    raw_path: &Path,
    topics: &Topics,
    rep: usize,
    follower: Connection,
) -> R<crate::ours::Concurrent> {
    let (requests, queue) = mpsc::channel::<Request>();
    let mut committer_conn = connect(raw_path)?;
    let committer = std::thread::spawn(move || -> Result<(), String> {
        let conn = &mut committer_conn;
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while let Ok(next) = queue.try_recv() {
                group.push(next);
            }
            let outcome = (|| -> R<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut insert = tx.prepare_cached(INSERT)?;
                    for (stream, version, topic, payload, _) in &group {
                        insert.execute(params![
                            stream,
                            i64::try_from(*version)?,
                            uuid::Uuid::now_v7().as_bytes().as_slice(),
                            topic,
                            1i64,
                            micros_now(),
                            payload,
                        ])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })()
            .map_err(|e| e.to_string());
            for (.., reply) in group {
                let _ = reply.send(outcome.clone());
            }
        }
        Ok(())
    });
    let requests = Mutex::new(requests);
    let base = crate::ours::concurrent(
        params.writers,
        params.concurrent_budget,
        &|| {
            let conn = connect(raw_path)?;
            let max: i64 =
                conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                    r.get(0)
                })?;
            Ok(u64::try_from(max)?)
        },
        &|w| {
            let sender = requests.lock().map_err(|_| "poisoned")?.clone();
            let (reply, answers) = mpsc::channel();
            let stream = raw::last_stream(50_000_000 + (rep * 100 + w) as u64);
            let payload = raw::opened_payload(1)?;
            sender.send((stream.clone(), 1, topics.opened, payload, reply.clone()))?;
            answers.recv()??;
            Ok((sender, reply, answers, stream, 1u64))
        },
        &|(sender, reply, answers, stream, version): &mut GroupWriter| {
            *version += 1;
            let payload = raw::posted_payload(*version)?;
            sender.send((
                stream.clone(),
                *version,
                topics.posted,
                payload,
                reply.clone(),
            ))?;
            answers.recv()??;
            Ok(1)
        },
        follower,
        &|conn, after| {
            let mut stmt = conn.prepare_cached(
                "SELECT position FROM events WHERE position > ?1 ORDER BY position LIMIT 1000",
            )?;
            let positions = stmt
                .query_map([i64::try_from(after)?], |r| r.get::<_, i64>(0))?
                .map(|p| Ok(u64::try_from(p?)?))
                .collect::<R<Vec<u64>>>()?;
            Ok(positions)
        },
    )?;
    drop(requests);
    committer.join().map_err(|_| "the committer panicked")??;
    Ok(base)
}

fn concurrent(
    params: &Params,
    workload: &'static str,
    app: &Application,
    raw_path: &Path,
    topics: &Topics,
    outcomes: &mut Vec<Outcome>,
) -> R<()> {
    let (mut ours_rates, mut raw_rates) = (Vec::new(), Vec::new());
    let mut notes = Vec::new();
    let budget = params.concurrent_budget;
    for _ in 0..params.reps {
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
        let conn = connect(raw_path)?;
        let base = group_commit_baseline(params, raw_path, topics, crate::next_run(), conn)?;
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
        "sqlite",
        workload,
        median(ours_rates),
        median(raw_rates),
        "events/s",
        note,
    );
    println!("sqlite: {workload} done");
    Ok(())
}
