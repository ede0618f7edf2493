//! The event store: domain events in, domain events out, over any recorder.

use std::sync::Arc;

use uuid::Uuid;

use super::error::ApplicationError;
use crate::domain::{DomainEvent, EventEnvelope};
use crate::persistence::{
    EventQuery, Mapper, MemoryRecorder, NotificationQuery, ProcessRecorder, StoredEvent,
    StreamAppend,
};

/// Appends domain events to a recorder and reads them back, through a [`Mapper`].
///
/// Cheap to clone: clones share the recorder.
#[derive(Clone)]
pub struct EventStore {
    recorder: Arc<dyn ProcessRecorder>,
    mapper: Mapper,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// An event store over `recorder`, storing plain JSON.
    pub fn new(recorder: Arc<dyn ProcessRecorder>) -> Self {
        Self::with_mapper(recorder, Mapper::new())
    }

    /// An event store with a custom mapper (transcoders).
    pub fn with_mapper(recorder: Arc<dyn ProcessRecorder>, mapper: Mapper) -> Self {
        Self { recorder, mapper }
    }

    /// An event store in memory.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryRecorder::new()))
    }

    /// The recorder.
    #[must_use]
    pub fn recorder(&self) -> &Arc<dyn ProcessRecorder> {
        &self.recorder
    }

    /// The mapper.
    #[must_use]
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Encodes envelopes into per-stream appends, each expecting the version before its first
    /// event. Envelopes of one stream must be contiguous and in version order.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn to_appends<E: DomainEvent>(
        &self,
        envelopes: &[EventEnvelope<E>],
    ) -> Result<Vec<StreamAppend>, ApplicationError> {
        let mut appends: Vec<StreamAppend> = Vec::new();
        for envelope in envelopes {
            let stored = self.mapper.to_stored(envelope)?;
            match appends.last_mut() {
                Some(last) if last.stream_id == stored.stream_id => last.events.push(stored),
                _ => appends.push(StreamAppend {
                    stream_id: stored.stream_id.clone(),
                    expected_version: envelope.version.saturating_sub(1),
                    events: vec![stored],
                }),
            }
        }
        Ok(appends)
    }

    /// Appends domain events atomically, each stream expecting the version before its first
    /// event: the seed's event store "append". Returns the positions assigned.
    ///
    /// # Errors
    /// [`ApplicationError::Conflict`] when a stream moved on (nothing written), encoding or
    /// backend errors.
    pub fn append<E: DomainEvent>(
        &self,
        envelopes: &[EventEnvelope<E>],
    ) -> Result<Vec<u64>, ApplicationError> {
        let appends = self.to_appends(envelopes)?;
        Ok(self.recorder.append(&appends)?)
    }

    /// The events of a stream, oldest first.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn events<E: DomainEvent>(
        &self,
        stream_id: Uuid,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        self.select(stream_id, &EventQuery::all())
    }

    /// The events of a stream in a version range: e.g. every event from a given version
    /// (`EventQuery::all().from_version(5)`), or up to one.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn select<E: DomainEvent>(
        &self,
        stream_id: Uuid,
        query: &EventQuery,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        self.recorder
            .select_events(&stream_id.to_string(), query)?
            .into_iter()
            .map(|stored| self.decode(stored))
            .collect()
    }

    /// Every event with the given topic, in global order, from a position, at most `limit`.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn events_by_topic<E: DomainEvent>(
        &self,
        topic: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope<E>>, ApplicationError> {
        let query = NotificationQuery::new(from_position, limit).topics([topic]);
        self.recorder
            .select_notifications(&query)?
            .into_iter()
            .map(|stored| self.decode(stored))
            .collect()
    }

    /// One event by its event id.
    ///
    /// # Errors
    /// Backend or decoding errors.
    pub fn event_by_id<E: DomainEvent>(
        &self,
        event_id: Uuid,
    ) -> Result<Option<EventEnvelope<E>>, ApplicationError> {
        self.recorder
            .event_by_id(event_id)?
            .map(|stored| self.decode(stored))
            .transpose()
    }

    /// Deletes every event of a stream; returns how many were deleted.
    ///
    /// # Errors
    /// Backend errors.
    pub fn delete_stream(&self, stream_id: Uuid) -> Result<u64, ApplicationError> {
        Ok(self.recorder.delete_stream(&stream_id.to_string())?)
    }

    /// Decodes one stored event.
    ///
    /// # Errors
    /// Decoding errors naming the stream, version and position.
    pub fn decode<E: DomainEvent>(
        &self,
        stored: StoredEvent,
    ) -> Result<EventEnvelope<E>, ApplicationError> {
        Ok(self.mapper.to_envelope(stored)?)
    }
}
