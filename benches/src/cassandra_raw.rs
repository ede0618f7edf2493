//! Cassandra: the framework's recorder against the raw `scylla` driver doing the same work
//! on the same server, with the same tables (created by the recorder itself in a keyspace of
//! the baseline's own) and the best statements by hand: one lightweight-transaction `UPDATE`
//! for a new stream, one conditional batch for an append (the only way to write several rows
//! atomically with a version check), one unpaged select for a load.
//!
//! Only save_one, append_batch100 and load_10k: Cassandra keeps no global log to scan and no
//! atomic multi-stream save to race.

use std::hint::black_box;
use std::sync::Arc;

use eventsourcing::persistence::{CassandraConfig, CassandraRecorder};
use eventsourcing::prelude::*;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use crate::ours;
use crate::raw::{self, Folded, RawStore, Topics};
use crate::{Outcome, Params, R};

/// The baseline's connection and statements, on a runtime of its own (the benchmark is a
/// blocking program, as the recorder's callers are).
struct Raw {
    runtime: tokio::runtime::Runtime,
    session: Session,
    append: PreparedStatement,
    load: PreparedStatement,
    topics: Topics,
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Raw {
    /// Polls `future` on the calling thread with the runtime's reactor and timers: cheaper
    /// than `Runtime::block_on`, which hands the wake-ups through the runtime's scheduler.
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let _context = self.runtime.enter();
        futures_executor::block_on(future)
    }

    fn open(nodes: &[String], keyspace: &str) -> R<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (session, append, load) = runtime.block_on(async {
            let session = SessionBuilder::new().known_nodes(nodes).build().await?;
            let prepare = |cql: String| {
                let session = &session;
                async move {
                    let mut statement = session.prepare(cql).await?;
                    statement.set_consistency(Consistency::Quorum);
                    statement.set_serial_consistency(Some(SerialConsistency::Serial));
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(statement)
                }
            };
            let append = prepare(format!(
                "UPDATE {keyspace}.events SET head = ?, event_id = ?, topic = ?, schema_version = 1, \
                 payload = ?, recorded_at = ? WHERE stream_id = ? AND bucket = 0 AND version = ? IF head = ?"
            ))
            .await?;
            let load = prepare(format!(
                "SELECT version, topic, recorded_at, payload FROM {keyspace}.events \
                 WHERE stream_id = ? AND bucket = 0"
            ))
            .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((session, append, load))
        })?;
        Ok(Self {
            runtime,
            session,
            append,
            load,
            topics: Topics::new(),
        })
    }
}

/// The `[applied]` column of a lightweight transaction's answer.
fn applied(result: scylla::response::query_result::QueryResult) -> R<bool> {
    let rows = result.into_rows_result()?;
    let row = rows.first_row::<scylla::value::Row>()?;
    Ok(matches!(
        row.columns.first(),
        Some(Some(scylla::value::CqlValue::Boolean(true)))
    ))
}

impl RawStore for Raw {
    fn save_one(&mut self, i: u64) -> R<()> {
        let payload = raw::opened_payload(i)?;
        let stream = raw::last_stream(i);
        // `UPDATE ... IF head = null` (a condition on the partition's static column), as the
        // recorder does: the framework ran at 1.07x a baseline that used `INSERT ... IF NOT
        // EXISTS` instead, so that form was not the best by hand.
        let result = self.block_on(self.session.execute_unpaged(
            &self.append,
            (
                1i64,
                uuid::Uuid::now_v7(),
                self.topics.opened,
                payload.as_slice(),
                micros_now(),
                stream.as_str(),
                1i64,
                None::<i64>,
            ),
        ))?;
        if !applied(result)? {
            return Err(format!("stream {stream} exists").into());
        }
        Ok(())
    }

    fn append(&mut self, stream: &str, after: u64, n: u64) -> R<()> {
        let last = i64::try_from(after + n)?;
        let expected = i64::try_from(after)?;
        let mut batch = Batch::new(BatchType::Logged);
        batch.set_consistency(Consistency::Quorum);
        batch.set_serial_consistency(Some(SerialConsistency::Serial));
        let mut values = Vec::new();
        let payloads: Vec<Vec<u8>> = (after + 1..=after + n)
            .map(raw::posted_payload)
            .collect::<R<_>>()?;
        for (v, payload) in (after + 1..=after + n).zip(&payloads) {
            batch.append_statement(self.append.clone());
            values.push((
                last,
                uuid::Uuid::now_v7(),
                self.topics.posted,
                payload.as_slice(),
                micros_now(),
                stream,
                i64::try_from(v)?,
                expected,
            ));
        }
        let result = self.block_on(self.session.batch(&batch, values))?;
        if !applied(result)? {
            return Err(format!("stream {stream} moved on").into());
        }
        Ok(())
    }

    fn load(&mut self, stream: &str) -> R<Folded> {
        let result = self.block_on(self.session.execute_unpaged(&self.load, (stream,)))?;
        let rows = result.into_rows_result()?;
        let mut folded = Folded::default();
        for row in rows.rows::<(i64, &str, i64, &[u8])>()? {
            let (version, topic, timestamp, payload) = row?;
            black_box((version, timestamp));
            folded.apply(raw::decode(&self.topics, topic, payload)?);
        }
        Ok(folded)
    }

    fn scan(&mut self, _limit: u64) -> R<u64> {
        Err("Cassandra keeps no global log to scan".into())
    }

    fn count(&mut self) -> R<u64> {
        Err("Cassandra keeps no global log to count".into())
    }
}

/// Runs the Cassandra workloads against `EVENTSOURCING_TEST_CASSANDRA_URL`, in two fresh
/// keyspaces (ours and the baseline's) that are dropped afterwards.
///
/// # Errors
/// The first error; a missing URL.
pub fn run(params: &Params, outcomes: &mut Vec<Outcome>) -> R<()> {
    let url = std::env::var("EVENTSOURCING_TEST_CASSANDRA_URL")
        .map_err(|_| "EVENTSOURCING_TEST_CASSANDRA_URL is not set")?;
    let base = CassandraConfig::from_url(&url)?;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let keyspace = |side: &str| {
        let mut config = base.clone();
        config.keyspace = format!("es_bench_{side}_{suffix}");
        config.drop_keyspace_on_drop_for_testing()
    };
    let ours_config = keyspace("ours");
    let storage = Arc::new(CassandraRecorder::open(ours_config.clone())?);
    // The baseline's tables come from the recorder itself; it stays open to drop them at the end.
    let raw_config = keyspace("raw");
    let raw_owner = CassandraRecorder::open(raw_config.clone())?;
    println!(
        "cassandra: keyspaces {} and {} on {:?}",
        ours_config.keyspace, raw_config.keyspace, base.nodes
    );
    let full = Application::builder().storage(storage.clone()).build()?;
    let events_only = Application::builder().recorder(storage).build()?;
    let mut raw = Raw::open(&base.nodes, &raw_config.keyspace)?;
    let mut params = params.clone();
    let supported = ["save_one", "append_batch100", "load_10k"];
    params.only = if params.only.is_empty() {
        supported.iter().map(|w| (*w).to_owned()).collect()
    } else {
        params
            .only
            .iter()
            .filter(|w| supported.contains(&w.as_str()))
            .cloned()
            .collect()
    };
    ours::run_common(
        "cassandra",
        &params,
        &full,
        &events_only,
        &mut raw,
        outcomes,
    )?;
    drop(raw);
    drop(raw_owner);
    Ok(())
}
