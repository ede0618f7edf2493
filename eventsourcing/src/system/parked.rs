//! Poison events: what a process application does with an upstream event whose policy keeps
//! failing ([`ErrorPolicy`]), and the dead-letter records of the events it parked.
//!
//! A parked event is recorded in the follower's own store through the one door: one stored
//! event in a stream of its own (`eventsourcing.parked/<follower>/<position>`), committed
//! with the tracking record of the upstream position, so the event is never processed twice
//! and never lost. Retrying or discarding it appends a second event to that stream, expecting
//! version 1, so two operators acting at once cannot both succeed. Parked records are found
//! through the store's log by topic ([`PARKED_TOPIC`]); they need a store with a global log.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{DomainError, Metadata, Timestamp};
use crate::persistence::{
    EventQuery, NotificationQuery, PersistenceError, StoredEvent, StreamAppend,
};

/// The topic of a parked event's dead-letter record.
pub const PARKED_TOPIC: &str = "eventsourcing.Parked";
/// The topic that closes a dead-letter record after a successful retry.
pub const RETRIED_TOPIC: &str = "eventsourcing.ParkedRetried";
/// The topic that closes a dead-letter record that an operator discarded.
pub const DISCARDED_TOPIC: &str = "eventsourcing.ParkedDiscarded";

/// What a follower does when its policy fails on an upstream event: retry a number of times
/// with exponential backoff, then stop (the default: the follower reports the error and
/// reads the event again at its next pull) or park the event in a dead-letter record and go
/// on with the next one. Nothing is skipped silently: a parked event is a record in the
/// follower's store, logged at `warn` and counted (`eventsourcing_parked_total`), until it is
/// retried or discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPolicy {
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    park: bool,
}

impl Default for ErrorPolicy {
    /// Three attempts, 10 ms then 20 ms apart, then stop.
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            park: false,
        }
    }
}

impl ErrorPolicy {
    /// Stops after `attempts` failed attempts (at least 1).
    #[must_use]
    pub fn stop_after(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            ..Self::default()
        }
    }

    /// Parks the event after `attempts` failed attempts (at least 1) and goes on.
    #[must_use]
    pub fn park_after(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            park: true,
            ..Self::default()
        }
    }

    /// Waits `first` after the first failure, doubling each time up to `max`.
    #[must_use]
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// The attempts before stopping or parking.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether an event is parked (rather than the follower stopped) after the attempts.
    #[must_use]
    pub fn parks(&self) -> bool {
        self.park
    }

    /// The wait after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// A parked upstream event, as recorded in the follower's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    /// The follower that parked it.
    pub follower: String,
    /// The upstream it came from.
    pub upstream: String,
    /// Its position in the upstream log.
    pub position: u64,
    /// Its event id, stream, version and topic.
    pub event_id: Uuid,
    /// The upstream stream.
    pub stream_id: String,
    /// The version in that stream.
    pub version: u64,
    /// The topic.
    pub topic: String,
    /// The last error's text.
    pub error: String,
    /// How many attempts failed.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failed_at: Timestamp,
    /// When the last attempt failed.
    pub last_failed_at: Timestamp,
}

impl ParkedEvent {
    /// The stream of a parked event's record: one per follower, upstream and position.
    #[must_use]
    pub fn stream_id_for(follower: &str, upstream: &str, position: u64) -> String {
        format!("eventsourcing.parked/{follower}/{upstream}/{position}")
    }

    pub(crate) fn new(
        follower: &str,
        upstream: &str,
        event: &StoredEvent,
        position: u64,
        error: String,
        attempts: u32,
        first_failed_at: Timestamp,
    ) -> Self {
        Self {
            follower: follower.to_owned(),
            upstream: upstream.to_owned(),
            position,
            event_id: event.metadata.event_id,
            stream_id: event.stream_id.clone(),
            version: event.version,
            topic: event.topic.clone(),
            error,
            attempts,
            first_failed_at,
            last_failed_at: Timestamp::now(),
        }
    }

    /// The append that records it (version 1 of its own stream).
    pub(crate) fn record(&self) -> Result<StreamAppend, PersistenceError> {
        let payload = serde_json::to_vec(self).map_err(|source| PersistenceError::Encode {
            stream_id: Self::stream_id_for(&self.follower, &self.upstream, self.position),
            source: DomainError::Encode {
                topic: PARKED_TOPIC.to_owned(),
                source,
            },
        })?;
        Ok(self.mark(PARKED_TOPIC, 0, payload))
    }

    /// The append that closes the record with `topic` (version 2, expecting 1).
    pub(crate) fn close(&self, topic: &str) -> StreamAppend {
        self.mark(topic, 1, b"{}".to_vec())
    }

    fn mark(&self, topic: &str, expected_version: u64, payload: Vec<u8>) -> StreamAppend {
        let stream_id = Self::stream_id_for(&self.follower, &self.upstream, self.position);
        StreamAppend {
            stream_id: stream_id.clone(),
            expected_version,
            events: vec![StoredEvent {
                stream_id,
                version: expected_version + 1,
                topic: topic.to_owned(),
                schema_version: 1,
                payload,
                metadata: Metadata::new(),
                position: None,
            }],
        }
    }
}

/// The open dead-letter records of `follower` for `upstream` in `store`, oldest first: parked,
/// and neither retried nor discarded since.
pub(crate) fn open_records(
    store: &dyn crate::persistence::Storage,
    follower: &str,
    upstream: &str,
) -> Result<Vec<ParkedEvent>, PersistenceError> {
    let mut parked = Vec::new();
    let mut from = 1;
    loop {
        let page = store
            .select_notifications(&NotificationQuery::new(from, 1_000).topics([PARKED_TOPIC]))?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        for event in &page {
            let record = decode(event)?;
            if record.follower != follower || record.upstream != upstream {
                continue;
            }
            // Still open when nothing came after the record in its stream.
            let closed = store.select_events(
                &event.stream_id,
                &EventQuery::all().from_version(2).limit(1),
            )?;
            if closed.is_empty() {
                parked.push(record);
            }
        }
        from = last + 1;
    }
    Ok(parked)
}

/// The open record of one parked event, read from its own stream (no scan of the log):
/// `None` when there is none, or it was retried or discarded.
pub(crate) fn open_record(
    store: &dyn crate::persistence::Storage,
    follower: &str,
    upstream: &str,
    position: u64,
) -> Result<Option<ParkedEvent>, PersistenceError> {
    let stream = ParkedEvent::stream_id_for(follower, upstream, position);
    match store
        .select_events(&stream, &EventQuery::all().limit(2))?
        .as_slice()
    {
        [record] if record.topic == PARKED_TOPIC => decode(record).map(Some),
        _ => Ok(None),
    }
}

fn decode(event: &StoredEvent) -> Result<ParkedEvent, PersistenceError> {
    serde_json::from_slice(&event.payload).map_err(|source| PersistenceError::Decode {
        stream_id: event.stream_id.clone(),
        version: event.version,
        position: event.position,
        topic: event.topic.clone(),
        source: DomainError::Payload {
            topic: PARKED_TOPIC.to_owned(),
            source,
        },
    })
}
