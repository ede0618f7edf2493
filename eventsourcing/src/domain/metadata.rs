//! Event metadata: identity, time, causation and correlation, and a free-form user map.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A point in time, in microseconds since the Unix epoch (UTC).
///
/// Stored as a plain integer so that every backend can index and compare it
/// without a time-zone conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time of the system clock.
    #[must_use]
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// A timestamp from microseconds since the Unix epoch.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Converts a [`SystemTime`], saturating at the range of an `i64` of microseconds.
    #[must_use]
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => Self(
                i64::try_from(before.duration().as_micros())
                    .map(|m| -m)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// Converts to a [`SystemTime`].
    #[must_use]
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}µs", self.0)
    }
}

/// What is recorded about an event besides its payload.
///
/// `event_id` is a UUID v7 (time-ordered), made when the event is recorded. Causation and
/// correlation ids link an event to the event that caused it and to the conversation it belongs
/// to; process applications set them automatically. `user` holds whatever the application
/// wants to keep with the event (a user id, a request id...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Unique id of the event (UUID v7).
    pub event_id: Uuid,
    /// When the event was recorded.
    pub timestamp: Timestamp,
    /// The id of the event that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The id shared by every event of one conversation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// Application-defined key-value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl Metadata {
    /// Fresh metadata: a new UUID v7 event id and the current time.
    #[must_use]
    pub fn new() -> Self {
        Self::with_context(&EventContext::default())
    }

    /// Fresh metadata carrying the causation, correlation and user values of `context`.
    #[must_use]
    pub fn with_context(context: &EventContext) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            timestamp: Timestamp::now(),
            causation_id: context.causation_id,
            correlation_id: context.correlation_id,
            user: context.user.clone(),
        }
    }

    /// True when there is nothing besides the event id and timestamp, so that stores can keep
    /// the extra metadata column empty.
    #[must_use]
    pub fn has_extras(&self) -> bool {
        self.causation_id.is_some() || self.correlation_id.is_some() || !self.user.is_empty()
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Self::new()
    }
}

/// The causation, correlation and user values that newly recorded events inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// Becomes the `causation_id` of new events.
    pub causation_id: Option<Uuid>,
    /// Becomes the `correlation_id` of new events.
    pub correlation_id: Option<Uuid>,
    /// Copied into the `user` map of new events.
    pub user: BTreeMap<String, String>,
}

impl EventContext {
    /// The context for events caused by an event with the given metadata: its id becomes the
    /// causation id, and its correlation id (or its own id, when it starts a conversation) is
    /// carried on.
    #[must_use]
    pub fn caused_by(cause: &Metadata) -> Self {
        Self {
            causation_id: Some(cause.event_id),
            correlation_id: Some(cause.correlation_id.unwrap_or(cause.event_id)),
            user: cause.user.clone(),
        }
    }
}
