//! The persistence subscriber: stores events published on a bus (the seed's flow).

use crate::application::EventStore;
use crate::persistence::{StoredEvent, StreamAppend};

use crate::application::{EventBus, SubscriptionId};

/// Subscribes to a bus and appends every published event that is not yet recorded (has no
/// position) to an event store, one atomic append per published batch. A conflict or backend
/// error is returned to the publisher through [`EventBus::publish`]'s error.
///
/// Unsubscribes when dropped.
#[derive(Debug)]
pub struct PersistenceSubscriber {
    bus: EventBus,
    subscription: SubscriptionId,
}

impl PersistenceSubscriber {
    /// Starts storing events published on `bus` into `store`.
    #[must_use]
    pub fn new(store: EventStore, bus: &EventBus) -> Self {
        let subscription = bus.subscribe(move |events| {
            let appends = group_unrecorded(events);
            if !appends.is_empty() {
                store.commit(&appends, None, Vec::new())?;
            }
            Ok(())
        });
        Self {
            bus: bus.clone(),
            subscription,
        }
    }
}

impl Drop for PersistenceSubscriber {
    fn drop(&mut self) {
        self.bus.unsubscribe(self.subscription);
    }
}

/// Groups consecutive unrecorded events of one stream into appends expecting the version
/// before the first.
fn group_unrecorded(events: &[StoredEvent]) -> Vec<StreamAppend> {
    let mut appends: Vec<StreamAppend> = Vec::new();
    for event in events.iter().filter(|e| e.position.is_none()) {
        match appends.last_mut() {
            Some(last) if last.stream_id == event.stream_id => last.events.push(event.clone()),
            _ => appends.push(StreamAppend {
                stream_id: event.stream_id.clone(),
                expected_version: event.version.saturating_sub(1),
                events: vec![event.clone()],
            }),
        }
    }
    appends
}
