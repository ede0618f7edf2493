//! The memory backend: the framework's `MemoryRecorder` against the physical floor, a `Vec`
//! of rows behind a lock, serde_json and a fold.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use eventsourcing::persistence::MemoryRecorder;
use eventsourcing::Application;
use uuid::Uuid;

use crate::raw::{self, Folded, RawStore, Topics};
use crate::{Outcome, Params, R};

/// A stored row, as a raw in-memory store keeps it.
#[derive(Debug, Clone)]
struct Row {
    position: u64,
    stream_id: String,
    version: u64,
    event_id: Uuid,
    topic: &'static str,
    timestamp: i64,
    payload: Vec<u8>,
}

/// Each stream's rows, contiguous (the load floor), and every row again in global order
/// (the scan floor).
#[derive(Debug, Default)]
struct Tables {
    streams: Vec<Vec<Row>>,
    by_id: HashMap<String, usize>,
    log: Vec<Row>,
}

/// The floor: each stream a `Vec` of rows, and the global log, behind a mutex.
#[derive(Debug, Default)]
struct Floor {
    inner: Mutex<Tables>,
    topics: Option<Topics>,
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Floor {
    fn topics(&self) -> &Topics {
        self.topics.as_ref().unwrap_or_else(|| unreachable!())
    }

    fn insert(&self, rows: Vec<(String, u64, &'static str, Vec<u8>)>) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tables = &mut *guard;
        for (stream_id, version, topic, payload) in rows {
            let next = tables.streams.len();
            let s = *tables.by_id.entry(stream_id.clone()).or_insert(next);
            if s == next {
                tables.streams.push(Vec::new());
            }
            let position = tables.log.len() as u64 + 1;
            let row = Row {
                position,
                stream_id,
                version,
                event_id: Uuid::now_v7(),
                topic,
                timestamp: micros_now(),
                payload,
            };
            tables.log.push(row.clone());
            tables.streams[s].push(row);
        }
    }
}

impl RawStore for Floor {
    fn save_one(&mut self, i: u64) -> R<()> {
        let payload = raw::opened_payload(i)?;
        let topic = self.topics().opened;
        self.insert(vec![(raw::last_stream(i), 1, topic, payload)]);
        Ok(())
    }

    fn append(&mut self, stream: &str, after: u64, n: u64) -> R<()> {
        let topic = self.topics().posted;
        let mut rows = Vec::with_capacity(usize::try_from(n)?);
        for v in after + 1..=after + n {
            rows.push((stream.to_owned(), v, topic, raw::posted_payload(v)?));
        }
        self.insert(rows);
        Ok(())
    }

    fn load(&mut self, stream: &str) -> R<Folded> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rows = guard
            .by_id
            .get(stream)
            .map_or(&[][..], |&s| guard.streams[s].as_slice());
        let mut folded = Folded::default();
        for row in rows {
            folded.apply(raw::decode(self.topics(), row.topic, &row.payload)?);
        }
        Ok(folded)
    }

    fn scan(&mut self, limit: u64) -> R<u64> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut read = 0u64;
        for row in guard
            .log
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            // A reader gets owned rows, as from a SELECT.
            let owned = row.clone();
            black_box((
                owned.position,
                owned.version,
                owned.event_id,
                owned.timestamp,
            ));
            black_box(&owned.stream_id);
            read += 1;
        }
        Ok(read)
    }

    fn count(&mut self) -> R<u64> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(guard.log.len() as u64)
    }
}

/// Runs the memory workloads.
///
/// # Errors
/// The first error.
pub fn run(params: &Params, outcomes: &mut Vec<Outcome>) -> R<()> {
    let storage = Arc::new(MemoryRecorder::new());
    let full = Application::builder().storage(storage.clone()).build()?;
    let events_only = Application::builder().recorder(storage).build()?;
    let mut floor = Floor {
        topics: Some(Topics::new()),
        ..Floor::default()
    };
    crate::ours::run_common("memory", params, &full, &events_only, &mut floor, outcomes)
}
