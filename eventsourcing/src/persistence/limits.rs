//! Limits on what one save may write, checked before any I/O.
//!
//! An event store keeps every event for ever, so one runaway payload (a whole file pasted into
//! an event) or one runaway batch (a loop that records a million events into one aggregate
//! before saving) is a cost paid on every replay afterwards. [`Limits`] bounds both; the
//! [`EventStore`](crate::EventStore) checks them on every save path
//! ([`EventStore::append`](crate::EventStore::append) and
//! [`Application::save`](crate::Application::save)) before calling the recorder, and a
//! breach is a [`PersistenceError::LimitExceeded`] with nothing written.
//!
//! ```
//! use eventsourcing::persistence::Limits;
//! use eventsourcing::Application;
//!
//! # fn main() -> Result<(), eventsourcing::ApplicationError> {
//! let app = Application::builder()
//!     .url("memory:")?
//!     .limits(Limits::default().max_event_bytes(64 * 1024).max_batch_events(500))
//!     .build()?;
//! assert_eq!(app.event_store().limits().max_batch_events, 500);
//! # Ok(()) }
//! ```

use super::error::PersistenceError;
use super::stored_event::StreamAppend;

/// The maximum size of one event and the maximum number of events in one atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest stored payload (after transcoding), in bytes. Default: 1 MiB
    /// ([`Limits::DEFAULT_MAX_EVENT_BYTES`]).
    pub max_event_bytes: usize,
    /// The most events one save may append (over all its streams). Default: 10,000
    /// ([`Limits::DEFAULT_MAX_BATCH_EVENTS`]).
    pub max_batch_events: usize,
}

impl Limits {
    /// 1 MiB: far above any sensible event, small enough that a replay never meets a
    /// monster.
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
    /// 10,000 events: a batch of this size is one transaction of a few megabytes.
    pub const DEFAULT_MAX_BATCH_EVENTS: usize = 10_000;

    /// No limits at all (`usize::MAX` for both).
    #[must_use]
    pub fn unlimited() -> Self {
        Self {
            max_event_bytes: usize::MAX,
            max_batch_events: usize::MAX,
        }
    }

    /// Sets the largest payload, in bytes.
    #[must_use]
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Sets the most events in one batch.
    #[must_use]
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events;
        self
    }

    /// Checks a batch against the limits.
    ///
    /// # Errors
    /// [`PersistenceError::LimitExceeded`] for the first limit broken.
    pub fn check(&self, batch: &[StreamAppend]) -> Result<(), PersistenceError> {
        let count: usize = batch.iter().map(|a| a.events.len()).sum();
        if count > self.max_batch_events {
            return Err(PersistenceError::LimitExceeded {
                what: "number of events in one batch",
                limit: to_u64(self.max_batch_events),
                actual: to_u64(count),
            });
        }
        for event in batch.iter().flat_map(|a| &a.events) {
            if event.payload.len() > self.max_event_bytes {
                return Err(PersistenceError::LimitExceeded {
                    what: "event payload size in bytes",
                    limit: to_u64(self.max_event_bytes),
                    actual: to_u64(event.payload.len()),
                });
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: Self::DEFAULT_MAX_EVENT_BYTES,
            max_batch_events: Self::DEFAULT_MAX_BATCH_EVENTS,
        }
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
