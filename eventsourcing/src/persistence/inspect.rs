//! Read-only inspection of a whole store, for operators and tools (the `eventsourcing` CLI):
//! the streams with their versions, per-topic statistics, the snapshots, the tracking
//! records and the backend's own integrity check.
//!
//! [`Inspect`] sits beside the recorder traits rather than inside them: applications never
//! need it, and a third-party store is complete without it. It is implemented for the
//! memory, SQLite and PostgreSQL recorders; every method only reads.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::error::PersistenceError;
use super::memory::MemoryRecorder;
use super::recorder::{ApplicationRecorder, SnapshotRecorder, Storage};
use super::stored_event::NotificationQuery;
use crate::domain::Timestamp;

/// One stream: its id, its current version, how many events it has and when its last event
/// was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream id.
    pub stream_id: String,
    /// The highest version stored.
    pub version: u64,
    /// How many events the stream has (equal to `version` unless versions have gaps).
    pub events: u64,
    /// The timestamp of the newest event.
    pub last_modified: Timestamp,
}

/// The events of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// The stored topic.
    pub topic: String,
    /// How many events have it.
    pub events: u64,
    /// The sum of their stored payload sizes, in bytes.
    pub payload_bytes: u64,
    /// The oldest event's timestamp.
    pub first: Timestamp,
    /// The newest event's timestamp.
    pub last: Timestamp,
}

/// Counts over a whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// How many streams have events.
    pub streams: u64,
    /// Per topic, sorted by topic.
    pub topics: Vec<TopicStats>,
    /// How many snapshots are stored.
    pub snapshots: u64,
    /// The sum of the snapshots' stored state sizes, in bytes.
    pub snapshot_bytes: u64,
    /// How many tracking records are stored.
    pub tracking_records: u64,
}

impl StoreStats {
    /// The number of events over all topics.
    #[must_use]
    pub fn events(&self) -> u64 {
        self.topics.iter().map(|t| t.events).sum()
    }

    /// The sum of the stored payload sizes over all topics.
    #[must_use]
    pub fn payload_bytes(&self) -> u64 {
        self.topics.iter().map(|t| t.payload_bytes).sum()
    }
}

/// One stored snapshot, without its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The stream.
    pub stream_id: String,
    /// The version of the entity the snapshot reflects.
    pub version: u64,
    /// The entity name.
    pub topic: String,
    /// The stored state's size, in bytes.
    pub bytes: u64,
}

/// The tracking records of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingSummary {
    /// The upstream name.
    pub upstream: String,
    /// The highest tracked position.
    pub max_position: u64,
    /// How many records the upstream has.
    pub records: u64,
}

/// Read-only inspection of a whole store. Every method reads a consistent view where the
/// backend offers one cheaply (one statement), and none of them writes.
pub trait Inspect: Storage {
    /// The backend's name, e.g. `"SQLite"`.
    fn backend_name(&self) -> &'static str;

    /// Calls `visit` with each stream whose id starts with `prefix` (every stream for an
    /// empty prefix), in stream id order (bytewise), at most `limit` of them, until `visit`
    /// breaks.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn for_each_stream(
        &self,
        prefix: &str,
        limit: Option<usize>,
        visit: &mut dyn FnMut(StreamSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError>;

    /// Counts of events by topic, streams, snapshots and tracking records.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn store_stats(&self) -> Result<StoreStats, PersistenceError>;

    /// Calls `visit` with each snapshot, in stream id then version order, until it breaks.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn for_each_snapshot(
        &self,
        visit: &mut dyn FnMut(SnapshotSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError>;

    /// The tracking records, one summary per upstream, sorted by upstream.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn tracking_summaries(&self) -> Result<Vec<TrackingSummary>, PersistenceError>;

    /// The backend's own consistency check of its files or tables (SQLite's `PRAGMA
    /// integrity_check`): one line per problem, empty when it found none or the backend has
    /// no such check.
    ///
    /// # Errors
    /// Backend failures.
    fn integrity_check(&self) -> Result<Vec<String>, PersistenceError> {
        Ok(Vec::new())
    }
}

/// Events read a page at a time by the memory recorder's inspection.
const PAGE: usize = 1000;

/// Visits the whole log of `recorder` in position order.
fn scan_log(
    recorder: &dyn ApplicationRecorder,
    mut visit: impl FnMut(&super::StoredEvent),
) -> Result<(), PersistenceError> {
    let mut from = 1;
    let mut page = Vec::new();
    loop {
        page.clear();
        recorder.select_notifications_into(&NotificationQuery::new(from, PAGE), &mut page)?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            return Ok(());
        };
        page.iter().for_each(&mut visit);
        from = last.saturating_add(1);
        if page.len() < PAGE {
            return Ok(());
        }
    }
}

fn memory_streams(
    recorder: &MemoryRecorder,
) -> Result<BTreeMap<String, StreamSummary>, PersistenceError> {
    let mut streams: BTreeMap<String, StreamSummary> = BTreeMap::new();
    scan_log(recorder, |event| {
        let entry = streams
            .entry(event.stream_id.clone())
            .or_insert_with(|| StreamSummary {
                stream_id: event.stream_id.clone(),
                version: 0,
                events: 0,
                last_modified: event.metadata.timestamp,
            });
        entry.version = entry.version.max(event.version);
        entry.events += 1;
        entry.last_modified = entry.last_modified.max(event.metadata.timestamp);
    })?;
    Ok(streams)
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The memory recorder keeps everything in one process, so its inspection scans the log
/// through the public recorder methods; it keeps no list of tracking records by upstream
/// that it could expose, so [`Inspect::tracking_summaries`] is unsupported there (and
/// [`StoreStats::tracking_records`] is 0).
impl Inspect for MemoryRecorder {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn for_each_stream(
        &self,
        prefix: &str,
        limit: Option<usize>,
        visit: &mut dyn FnMut(StreamSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let streams = memory_streams(self)?;
        for summary in streams
            .into_values()
            .filter(|s| s.stream_id.starts_with(prefix))
            .take(limit.unwrap_or(usize::MAX))
        {
            if visit(summary).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn store_stats(&self) -> Result<StoreStats, PersistenceError> {
        let mut topics: BTreeMap<String, TopicStats> = BTreeMap::new();
        scan_log(self, |event| {
            let at = event.metadata.timestamp;
            let entry = topics
                .entry(event.topic.clone())
                .or_insert_with(|| TopicStats {
                    topic: event.topic.clone(),
                    events: 0,
                    payload_bytes: 0,
                    first: at,
                    last: at,
                });
            entry.events += 1;
            entry.payload_bytes += len_u64(event.payload.len());
            entry.first = entry.first.min(at);
            entry.last = entry.last.max(at);
        })?;
        let mut stats = StoreStats {
            streams: len_u64(memory_streams(self)?.len()),
            topics: topics.into_values().collect(),
            ..StoreStats::default()
        };
        self.for_each_snapshot(&mut |s| {
            stats.snapshots += 1;
            stats.snapshot_bytes += s.bytes;
            ControlFlow::Continue(())
        })?;
        Ok(stats)
    }

    /// Only the newest snapshot of each stream that has events is listed (the memory
    /// recorder offers no other way to find them).
    fn for_each_snapshot(
        &self,
        visit: &mut dyn FnMut(SnapshotSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        for stream_id in memory_streams(self)?.into_keys() {
            if let Some(snapshot) = self.latest_snapshot(&stream_id, None)? {
                let summary = SnapshotSummary {
                    stream_id,
                    version: snapshot.version,
                    topic: snapshot.topic,
                    bytes: len_u64(snapshot.state.len()),
                };
                if visit(summary).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn tracking_summaries(&self) -> Result<Vec<TrackingSummary>, PersistenceError> {
        Err(PersistenceError::Unsupported {
            backend: "memory",
            operation: "listing tracking records",
            reason: "the memory recorder can only be asked for one upstream at a time",
        })
    }
}

macro_rules! forward_inspect {
    ($($ptr:ty),*) => {$(
        impl<R: Inspect + ?Sized> Inspect for $ptr {
            fn backend_name(&self) -> &'static str {
                (**self).backend_name()
            }
            fn for_each_stream(
                &self,
                prefix: &str,
                limit: Option<usize>,
                visit: &mut dyn FnMut(StreamSummary) -> ControlFlow<()>,
            ) -> Result<(), PersistenceError> {
                (**self).for_each_stream(prefix, limit, visit)
            }
            fn store_stats(&self) -> Result<StoreStats, PersistenceError> {
                (**self).store_stats()
            }
            fn for_each_snapshot(
                &self,
                visit: &mut dyn FnMut(SnapshotSummary) -> ControlFlow<()>,
            ) -> Result<(), PersistenceError> {
                (**self).for_each_snapshot(visit)
            }
            fn tracking_summaries(&self) -> Result<Vec<TrackingSummary>, PersistenceError> {
                (**self).tracking_summaries()
            }
            fn integrity_check(&self) -> Result<Vec<String>, PersistenceError> {
                (**self).integrity_check()
            }
        }
    )*};
}

forward_inspect!(&R, std::sync::Arc<R>, Box<R>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Metadata;
    use crate::persistence::{StoredEvent, StoredSnapshot, StreamAppend, Tracking};

    fn event(stream_id: &str, version: u64, topic: &str, at: i64) -> StoredEvent {
        let mut metadata = Metadata::new();
        metadata.timestamp = Timestamp::from_micros(at);
        StoredEvent {
            stream_id: stream_id.into(),
            version,
            topic: topic.into(),
            schema_version: 1,
            payload: b"{}".to_vec(),
            metadata,
            position: None,
        }
    }

    fn fill(store: &dyn Inspect) -> Result<(), PersistenceError> {
        store.append(
            &[
                StreamAppend {
                    stream_id: "a-1".into(),
                    expected_version: 0,
                    events: vec![
                        event("a-1", 1, "A.Made", 10),
                        event("a-1", 2, "A.Changed", 20),
                    ],
                },
                StreamAppend {
                    stream_id: "b-1".into(),
                    expected_version: 0,
                    events: vec![event("b-1", 1, "A.Made", 5)],
                },
            ],
            None,
        )?;
        store.append(
            &[StreamAppend {
                stream_id: "a-2".into(),
                expected_version: 0,
                events: vec![event("a-2", 1, "A.Made", 30)],
            }],
            Some(&Tracking::new("up", 7)),
        )?;
        store.put_snapshot(&StoredSnapshot {
            stream_id: "a-1".into(),
            version: 2,
            topic: "A".into(),
            schema_version: 1,
            state: b"{\"x\":1}".to_vec(),
            created_on: Timestamp::from_micros(10),
            modified_on: Timestamp::from_micros(20),
        })
    }

    fn check(store: &dyn Inspect, tracking: bool) -> Result<(), PersistenceError> {
        fill(store)?;
        let mut streams = Vec::new();
        store.for_each_stream("a-", None, &mut |s| {
            streams.push(s);
            ControlFlow::Continue(())
        })?;
        assert_eq!(
            streams,
            [
                StreamSummary {
                    stream_id: "a-1".into(),
                    version: 2,
                    events: 2,
                    last_modified: Timestamp::from_micros(20)
                },
                StreamSummary {
                    stream_id: "a-2".into(),
                    version: 1,
                    events: 1,
                    last_modified: Timestamp::from_micros(30)
                },
            ]
        );
        let mut limited = 0;
        store.for_each_stream("", Some(2), &mut |_| {
            limited += 1;
            ControlFlow::Continue(())
        })?;
        assert_eq!(limited, 2);
        let stats = store.store_stats()?;
        assert_eq!(
            (stats.streams, stats.events(), stats.payload_bytes()),
            (3, 4, 8)
        );
        assert_eq!((stats.snapshots, stats.snapshot_bytes), (1, 7));
        assert_eq!(stats.topics[1].topic, "A.Made");
        assert_eq!(stats.topics[1].events, 3);
        assert_eq!(
            (stats.topics[1].first, stats.topics[1].last),
            (Timestamp::from_micros(5), Timestamp::from_micros(30))
        );
        let mut snapshots = Vec::new();
        store.for_each_snapshot(&mut |s| {
            snapshots.push((s.stream_id, s.version, s.bytes));
            ControlFlow::Continue(())
        })?;
        assert_eq!(snapshots, [("a-1".to_owned(), 2, 7)]);
        if tracking {
            assert_eq!(stats.tracking_records, 1);
            assert_eq!(
                store.tracking_summaries()?,
                [TrackingSummary {
                    upstream: "up".into(),
                    max_position: 7,
                    records: 1
                }]
            );
        }
        assert!(store.integrity_check()?.is_empty());
        Ok(())
    }

    #[test]
    fn memory() -> Result<(), PersistenceError> {
        check(&MemoryRecorder::new(), false)
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite() -> Result<(), PersistenceError> {
        check(&crate::persistence::SqliteRecorder::in_memory()?, true)
    }
}
