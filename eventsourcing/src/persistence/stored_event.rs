//! The stored form of an event, as every recorder keeps it.

use super::lease::Lease;
use crate::domain::Metadata;

/// An event as it is stored: identity and order, the topic and schema version that say how to
/// read the payload, the payload bytes (JSON, possibly compressed or encrypted), and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The stream (entity) the event belongs to.
    pub stream_id: String,
    /// The event's place in its stream, from 1.
    pub version: u64,
    /// The topic, e.g. `"Dog.TrickAdded"`.
    pub topic: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Event id, timestamp, causation, correlation and user values.
    pub metadata: Metadata,
    /// The position in the global log; `None` until recorded.
    pub position: Option<u64>,
}

impl StoredEvent {
    /// This event borrowed, as [`AggregateRecorder::for_each_event`](super::AggregateRecorder::for_each_event)
    /// passes it (the metadata is cloned: no allocation unless it has user values).
    #[must_use]
    pub fn as_ref(&self) -> StoredEventRef<'_> {
        StoredEventRef {
            stream_id: &self.stream_id,
            version: self.version,
            topic: &self.topic,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata: self.metadata.clone(),
            position: self.position,
        }
    }
}

/// A stored event borrowed from a backend's row (or from a [`StoredEvent`]): what
/// [`AggregateRecorder::for_each_event`](super::AggregateRecorder::for_each_event) hands to its
/// visitor, so that loading an aggregate decodes each event straight from the row instead of
/// copying every row into a [`StoredEvent`] first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEventRef<'a> {
    /// The stream (entity) the event belongs to.
    pub stream_id: &'a str,
    /// The event's place in its stream, from 1.
    pub version: u64,
    /// The topic, e.g. `"Dog.TrickAdded"`.
    pub topic: &'a str,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: &'a [u8],
    /// Event id, timestamp, causation, correlation and user values.
    pub metadata: Metadata,
    /// The position in the global log.
    pub position: Option<u64>,
}

impl StoredEventRef<'_> {
    /// An owned copy.
    #[must_use]
    pub fn into_owned(self) -> StoredEvent {
        StoredEvent {
            stream_id: self.stream_id.to_owned(),
            version: self.version,
            topic: self.topic.to_owned(),
            schema_version: self.schema_version,
            payload: self.payload.to_vec(),
            metadata: self.metadata,
            position: self.position,
        }
    }
}

/// A batch of new events for one stream, appended only if the stream is at `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    /// The stream to append to.
    pub stream_id: String,
    /// The version the stream must have now (0 for a new stream).
    pub expected_version: u64,
    /// The new events; their versions must run from `expected_version + 1` without gaps.
    pub events: Vec<StoredEvent>,
}

/// Which events of a stream to select.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// The lowest version to return (inclusive).
    pub from_version: Option<u64>,
    /// The highest version to return (inclusive).
    pub to_version: Option<u64>,
    /// Newest first when true.
    pub descending: bool,
    /// At most this many events.
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Every event, oldest first.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only events at or after `version`.
    #[must_use]
    pub fn from_version(mut self, version: u64) -> Self {
        self.from_version = Some(version);
        self
    }

    /// Only events at or before `version`.
    #[must_use]
    pub fn to_version(mut self, version: u64) -> Self {
        self.to_version = Some(version);
        self
    }

    /// Newest first.
    #[must_use]
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    /// At most `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `version` is inside the range (limit and order aside).
    #[must_use]
    pub fn contains(&self, version: u64) -> bool {
        self.from_version.is_none_or(|v| version >= v)
            && self.to_version.is_none_or(|v| version <= v)
    }
}

/// Which notifications (events in global order) to select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationQuery {
    /// The lowest position to return (inclusive); positions start at 1.
    pub from_position: u64,
    /// At most this many events.
    pub limit: usize,
    /// Only these topics, when not empty.
    pub topics: Vec<String>,
    /// Only positions at or below this one, when set.
    pub to_position: Option<u64>,
}

impl NotificationQuery {
    /// Up to `limit` events from `from_position` on.
    #[must_use]
    pub fn new(from_position: u64, limit: usize) -> Self {
        Self {
            from_position,
            limit,
            topics: Vec::new(),
            to_position: None,
        }
    }

    /// Only events with one of these topics.
    #[must_use]
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// Only positions at or below `position`.
    #[must_use]
    pub fn to_position(mut self, position: u64) -> Self {
        self.to_position = Some(position);
        self
    }

    /// Whether an event passes the topic and upper-bound filters.
    #[must_use]
    pub fn matches(&self, position: u64, topic: &str) -> bool {
        position >= self.from_position
            && self.to_position.is_none_or(|p| position <= p)
            && (self.topics.is_empty() || self.topics.iter().any(|t| t == topic))
    }
}

/// The position a process application has processed in an upstream log, recorded in the same
/// transaction as the events it caused.
///
/// A commit covers the upstream events from `from_position` to `position` (one event, or a
/// page of a batched commit); it is refused when the upstream has any tracked position at or
/// above `from_position`, since upstream events are processed in order and such a record
/// means another instance has processed some of them already.
///
/// A record may also carry a [`Lease`] ([`Tracking::fenced`]): the commit is then written only
/// while that lease is held at its epoch (see [`LeaseRecorder`](super::LeaseRecorder)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// The name of the upstream application.
    pub upstream: String,
    /// The last upstream position processed.
    pub position: u64,
    /// The first upstream position this commit covers (`position` for one event).
    pub from_position: u64,
    /// The lease this commit is fenced by, if any.
    pub lease: Option<Lease>,
}

impl Tracking {
    /// The record of one processed upstream event.
    #[must_use]
    pub fn new(upstream: impl Into<String>, position: u64) -> Self {
        Self {
            upstream: upstream.into(),
            position,
            from_position: position,
            lease: None,
        }
    }

    /// The record of a page of upstream events, `from_position` to `position`.
    #[must_use]
    pub fn page(upstream: impl Into<String>, from_position: u64, position: u64) -> Self {
        Self {
            upstream: upstream.into(),
            position,
            from_position: from_position.min(position),
            lease: None,
        }
    }

    /// The same record, written only while `lease` is held at its epoch: a commit of an
    /// instance whose lease expired or was taken over fails with
    /// [`PersistenceError::Fenced`](super::PersistenceError::Fenced).
    #[must_use]
    pub fn fenced(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }
}

/// A stored snapshot: an entity's state at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The entity's stream.
    pub stream_id: String,
    /// The version of the entity the state reflects.
    pub version: u64,
    /// The entity name, e.g. `"Dog"`.
    pub topic: String,
    /// The schema version of the state.
    pub schema_version: u32,
    /// The encoded state (JSON, possibly transcoded).
    pub state: Vec<u8>,
    /// When the entity was created.
    pub created_on: crate::domain::Timestamp,
    /// When the entity was last changed (as of `version`).
    pub modified_on: crate::domain::Timestamp,
}
