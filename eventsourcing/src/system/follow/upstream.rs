//! Where followers read from: an upstream application's notification log, and the events they
//! read, with typed decoding.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::application::Application;
use crate::domain::{DomainEvent, EventEnvelope, Metadata};
use crate::persistence::{ApplicationRecorder, Mapper, NotificationQuery, StoredEvent};

use crate::system::SystemError;

/// An upstream application's notification log, under the name that tracking records use.
///
/// The name is the key of the follower's tracking records: keep it stable across restarts,
/// and give different upstreams different names.
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::system::Upstream;
///
/// let orders = Application::in_memory()?;
/// let upstream = Upstream::application("orders", &orders);
/// assert_eq!(upstream.name(), "orders");
/// assert!(upstream.select(1, 10, &[])?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Upstream {
    name: String,
    recorder: Arc<dyn ApplicationRecorder>,
    mapper: Mapper,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The log of an application, decoded with its mapper (and so its transcoders).
    #[must_use]
    pub fn application(name: impl Into<String>, application: &Application) -> Self {
        let store = application.event_store();
        Self {
            name: name.into(),
            recorder: Arc::new(Arc::clone(store.recorder())),
            mapper: store.mapper().clone(),
        }
    }

    /// The log kept by any application recorder, decoded as plain JSON (see
    /// [`Upstream::with_mapper`] for transcoded payloads).
    #[must_use]
    pub fn recorder(name: impl Into<String>, recorder: Arc<dyn ApplicationRecorder>) -> Self {
        Self {
            name: name.into(),
            recorder,
            mapper: Mapper::new(),
        }
    }

    /// Decodes payloads with `mapper`.
    #[must_use]
    pub fn with_mapper(mut self, mapper: Mapper) -> Self {
        self.mapper = mapper;
        self
    }

    /// The name tracking records use.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mapper that decodes this log's payloads.
    #[must_use]
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Up to `limit` events from `from_position` (inclusive), only `topics` when not empty.
    ///
    /// # Errors
    /// [`SystemError::Upstream`] when the backend fails.
    pub fn select(
        &self,
        from_position: u64,
        limit: usize,
        topics: &[String],
    ) -> Result<Vec<StoredEvent>, SystemError> {
        let query = NotificationQuery::new(from_position, limit).topics(topics.iter().cloned());
        self.recorder
            .select_notifications(&query)
            .map_err(|source| SystemError::Upstream {
                upstream: self.name.clone(),
                source,
            })
    }

    /// The highest position in the log (0 when empty).
    ///
    /// # Errors
    /// [`SystemError::Upstream`] when the backend fails.
    pub fn max_position(&self) -> Result<u64, SystemError> {
        self.recorder
            .max_position()
            .map_err(|source| SystemError::Upstream {
                upstream: self.name.clone(),
                source,
            })
    }
}

/// One upstream event as a follower sees it: the stored event (through `Deref`) and the
/// means to decode it into a typed domain event.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    event: &'a StoredEvent,
    mapper: &'a Mapper,
}

impl<'a> Notification<'a> {
    /// Wraps a stored event read from a log whose payloads `mapper` decodes.
    #[must_use]
    pub fn new(event: &'a StoredEvent, mapper: &'a Mapper) -> Self {
        Self { event, mapper }
    }

    /// The stored event.
    #[must_use]
    pub fn stored(&self) -> &'a StoredEvent {
        self.event
    }

    /// The event's position in the upstream log (0 if it was never recorded).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.event.position.unwrap_or_default()
    }

    /// Whether the event is one of `E`'s topics (aliases included).
    #[must_use]
    pub fn is<E: DomainEvent>(&self) -> bool {
        E::resolve(&self.event.topic).is_ok()
    }

    /// Decodes the event as an `E`, or `None` when its topic is not one of `E`'s: the usual
    /// first line of a policy or projection is `let Some(e) = event.decode::<OrderEvent>()? else
    /// { return Ok(()) };`.
    ///
    /// # Errors
    /// [`SystemError::Decode`] when the topic is `E`'s but the payload cannot be read.
    pub fn decode<E: DomainEvent>(&self) -> Result<Option<EventEnvelope<E>>, SystemError> {
        if !self.is::<E>() {
            return Ok(None);
        }
        self.mapper
            .to_envelope_ref(self.event)
            .map(Some)
            .map_err(|source| SystemError::Decode {
                position: self.event.position,
                source,
            })
    }
}

impl Notification<'_> {
    /// The event's metadata with encrypted user values decrypted (see
    /// [`Mapper::decode_metadata`]); `self.metadata` is the stored form.
    ///
    /// # Errors
    /// [`SystemError::Decode`] when a value does not decrypt (wrong key, no metadata key).
    pub fn decoded_metadata(&self) -> Result<Metadata, SystemError> {
        self.mapper
            .decode_metadata(self.event)
            .map_err(|source| SystemError::Decode {
                position: self.event.position,
                source,
            })
    }
}

impl Deref for Notification<'_> {
    type Target = StoredEvent;
    fn deref(&self) -> &StoredEvent {
        self.event
    }
}
