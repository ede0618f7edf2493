//! The in-process bus: publish/subscribe for events, in order, synchronously.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use thiserror::Error;

use crate::domain::{DomainEvent, EventEnvelope};
use crate::persistence::{BoxError, Mapper, StoredEvent};

type Handler = Arc<dyn Fn(&[StoredEvent]) -> Result<(), BoxError> + Send + Sync>;

/// Identifies a subscription, to cancel it with [`EventBus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

/// Subscribers that failed while a batch was published.
#[derive(Debug, Error)]
#[error("{} subscriber(s) failed; first: {}", failures.len(), failures.first().map(|(_, e)| e.to_string()).unwrap_or_default())]
pub struct BusError {
    /// Each failing subscription with its error, in subscription order.
    pub failures: Vec<(SubscriptionId, BoxError)>,
}

/// Delivers batches of events to subscribers in the publishing thread, in subscription order.
///
/// Every subscriber receives every batch, even when an earlier subscriber failed; the failures
/// are returned together. Events are [`StoredEvent`]s so that subscribers of different entity
/// types share one bus; [`EventBus::subscribe_to`] decodes them for you. Cheap to clone: clones
/// share subscribers.
///
/// The application publishes each save's events after they commit, in order, with positions.
/// Batches of concurrent saves may reach subscribers in either order; a consumer that needs
/// the global order follows the notification log instead.
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
    handlers: RwLock<Vec<(SubscriptionId, Handler)>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.handlers().len())
            .finish()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn handlers(&self) -> Vec<(SubscriptionId, Handler)> {
        self.inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls `handler` with every published batch.
    pub fn subscribe<F>(&self, handler: F) -> SubscriptionId
    where
        F: Fn(&[StoredEvent]) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        let id = SubscriptionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, Arc::new(handler)));
        id
    }

    /// Calls `handler` with each published event of type `E` (other topics are skipped),
    /// decoded by `mapper`.
    pub fn subscribe_to<E, F>(&self, mapper: Mapper, handler: F) -> SubscriptionId
    where
        E: DomainEvent,
        F: Fn(EventEnvelope<E>) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.subscribe(move |events| {
            for stored in events.iter().filter(|e| E::resolve(&e.topic).is_ok()) {
                handler(mapper.to_envelope(stored.clone())?)?;
            }
            Ok(())
        })
    }

    /// Cancels a subscription; returns whether it existed.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut handlers = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = handlers.len();
        handlers.retain(|(h, _)| *h != id);
        handlers.len() != before
    }

    /// Whether anyone is subscribed.
    #[must_use]
    pub fn has_subscribers(&self) -> bool {
        !self
            .inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Delivers a batch to every subscriber. Handlers run outside the bus's lock, so they may
    /// publish or subscribe themselves.
    ///
    /// # Errors
    /// [`BusError`] listing every failing subscriber.
    pub fn publish(&self, events: &[StoredEvent]) -> Result<(), BusError> {
        let mut failures = Vec::new();
        for (id, handler) in self.handlers() {
            if let Err(error) = handler(events) {
                failures.push((id, error));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(BusError { failures })
        }
    }

    /// Encodes domain events with `mapper` and publishes them as one batch: the seed's
    /// `publish(event)`.
    ///
    /// # Errors
    /// Encoding errors are reported as a failure of the publisher itself; otherwise as
    /// [`EventBus::publish`].
    pub fn publish_events<E: DomainEvent>(
        &self,
        mapper: &Mapper,
        events: &[EventEnvelope<E>],
    ) -> Result<(), BusError> {
        let stored = events
            .iter()
            .map(|e| mapper.to_stored(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BusError {
                failures: vec![(SubscriptionId(u64::MAX), Box::new(e) as BoxError)],
            })?;
        self.publish(&stored)
    }
}
