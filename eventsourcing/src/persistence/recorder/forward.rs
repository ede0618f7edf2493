//! Forwarding: the recorder traits for `&R`, `Arc<R>` and `Box<R>`, and [`Layered`], a
//! wrapper that intercepts some methods of a store and forwards the others.
//!
//! Only the required methods are forwarded: the provided (collecting) forms are built on
//! them and no backend overrides them, so a forwarded call takes the path the store takes.
//! The one provided method that is forwarded is a capability, [`ProcessRecorder::leases`].

use std::ops::ControlFlow;
use std::sync::Arc;

use uuid::Uuid;

use super::{
    AdminRecorder, AggregateRecorder, ApplicationRecorder, ProcessRecorder, SnapshotRecorder,
    Storage,
};
use crate::persistence::error::PersistenceError;
use crate::persistence::lease::LeaseRecorder;
use crate::persistence::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};

macro_rules! forward_pointers {
    ($($ptr:ty),*) => {$(
        impl<R: AggregateRecorder + ?Sized> AggregateRecorder for $ptr {
            fn append(&self, batch: &[StreamAppend], tracking: Option<&Tracking>) -> Result<Vec<u64>, PersistenceError> {
                (**self).append(batch, tracking)
            }
            fn for_each_event(
                &self,
                stream_id: &str,
                query: &EventQuery,
                visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
            ) -> Result<(), PersistenceError> {
                (**self).for_each_event(stream_id, query, visit)
            }
        }
        impl<R: ApplicationRecorder + ?Sized> ApplicationRecorder for $ptr {
            fn select_notifications_into(&self, query: &NotificationQuery, into: &mut Vec<StoredEvent>) -> Result<(), PersistenceError> {
                (**self).select_notifications_into(query, into)
            }
            fn max_position(&self) -> Result<u64, PersistenceError> {
                (**self).max_position()
            }
        }
        impl<R: ProcessRecorder + ?Sized> ProcessRecorder for $ptr {
            fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
                (**self).max_tracking_position(upstream)
            }
            fn leases(&self) -> Option<&dyn LeaseRecorder> {
                (**self).leases()
            }
        }
        impl<R: AdminRecorder + ?Sized> AdminRecorder for $ptr {
            fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
                (**self).event_by_id(event_id)
            }
            fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
                (**self).delete_stream(stream_id)
            }
            fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
                (**self).update_events(events)
            }
        }
        impl<R: SnapshotRecorder + ?Sized> SnapshotRecorder for $ptr {
            fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
                (**self).put_snapshot(snapshot)
            }
            fn latest_snapshot(&self, stream_id: &str, at_most_version: Option<u64>) -> Result<Option<StoredSnapshot>, PersistenceError> {
                (**self).latest_snapshot(stream_id, at_most_version)
            }
            fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
                (**self).delete_snapshots(stream_id)
            }
        }
    )*};
}

forward_pointers!(&R, Arc<R>, Box<R>);

/// An interceptor of a store's calls, for [`Layered`]: each method defaults to forwarding to
/// [`inner`](Self::inner); override the ones to intercept (count, delay, fail, gate).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use eventsourcing::persistence::{
///     Layered, MemoryRecorder, PersistenceError, RecorderLayer, Storage, StreamAppend, Tracking,
/// };
///
/// /// Counts appends; every other call goes to the store as it is.
/// struct CountAppends {
///     store: MemoryRecorder,
///     appends: AtomicUsize,
/// }
///
/// impl RecorderLayer for CountAppends {
///     fn inner(&self) -> &dyn Storage {
///         &self.store
///     }
///     fn append(
///         &self,
///         batch: &[StreamAppend],
///         tracking: Option<&Tracking>,
///     ) -> Result<Vec<u64>, PersistenceError> {
///         self.appends.fetch_add(1, Ordering::Relaxed);
///         self.inner().append(batch, tracking)
///     }
/// }
///
/// let store = Layered(CountAppends { store: MemoryRecorder::new(), appends: AtomicUsize::new(0) });
/// let _: &dyn Storage = &store;
/// ```
pub trait RecorderLayer: Send + Sync {
    /// The store calls are forwarded to.
    fn inner(&self) -> &dyn Storage;

    /// [`AggregateRecorder::append`].
    ///
    /// # Errors
    /// As the inner store's.
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.inner().append(batch, tracking)
    }

    /// [`AggregateRecorder::for_each_event`].
    ///
    /// # Errors
    /// As the inner store's.
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.inner().for_each_event(stream_id, query, visit)
    }

    /// [`ApplicationRecorder::select_notifications_into`].
    ///
    /// # Errors
    /// As the inner store's.
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        self.inner().select_notifications_into(query, into)
    }

    /// [`ApplicationRecorder::max_position`].
    ///
    /// # Errors
    /// As the inner store's.
    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.inner().max_position()
    }

    /// [`ProcessRecorder::max_tracking_position`].
    ///
    /// # Errors
    /// As the inner store's.
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.inner().max_tracking_position(upstream)
    }

    /// [`ProcessRecorder::leases`].
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        self.inner().leases()
    }

    /// [`AdminRecorder::event_by_id`].
    ///
    /// # Errors
    /// As the inner store's.
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.inner().event_by_id(event_id)
    }

    /// [`AdminRecorder::delete_stream`].
    ///
    /// # Errors
    /// As the inner store's.
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.inner().delete_stream(stream_id)
    }

    /// [`AdminRecorder::update_events`].
    ///
    /// # Errors
    /// As the inner store's.
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.inner().update_events(events)
    }

    /// [`SnapshotRecorder::put_snapshot`].
    ///
    /// # Errors
    /// As the inner store's.
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.inner().put_snapshot(snapshot)
    }

    /// [`SnapshotRecorder::latest_snapshot`].
    ///
    /// # Errors
    /// As the inner store's.
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        self.inner().latest_snapshot(stream_id, at_most_version)
    }

    /// [`SnapshotRecorder::delete_snapshots`].
    ///
    /// # Errors
    /// As the inner store's.
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.inner().delete_snapshots(stream_id)
    }
}

/// A [`RecorderLayer`] as a [`Storage`]: every recorder trait, each call going through the
/// layer (and so to the inner store, unless the layer intercepts it).
#[derive(Debug, Default, Clone)]
pub struct Layered<L>(pub L);

impl<L: RecorderLayer> AggregateRecorder for Layered<L> {
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.0.append(batch, tracking)
    }
    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        self.0.for_each_event(stream_id, query, visit)
    }
}

impl<L: RecorderLayer> ApplicationRecorder for Layered<L> {
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        self.0.select_notifications_into(query, into)
    }
    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.0.max_position()
    }
}

impl<L: RecorderLayer> ProcessRecorder for Layered<L> {
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.0.max_tracking_position(upstream)
    }
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        self.0.leases()
    }
}

impl<L: RecorderLayer> AdminRecorder for Layered<L> {
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.0.event_by_id(event_id)
    }
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.0.delete_stream(stream_id)
    }
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.0.update_events(events)
    }
}

impl<L: RecorderLayer> SnapshotRecorder for Layered<L> {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.0.put_snapshot(snapshot)
    }
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        self.0.latest_snapshot(stream_id, at_most_version)
    }
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.0.delete_snapshots(stream_id)
    }
}

impl<L> std::ops::Deref for Layered<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Layered, RecorderLayer};
    use crate::domain::Metadata;
    use crate::persistence::{
        AggregateRecorder, ApplicationRecorder, EventQuery, MemoryRecorder, NotificationQuery,
        PersistenceError, Storage, StoredEvent, StreamAppend, Tracking,
    };

    struct CountAppends {
        store: MemoryRecorder,
        appends: AtomicUsize,
    }

    impl RecorderLayer for CountAppends {
        fn inner(&self) -> &dyn Storage {
            &self.store
        }
        fn append(
            &self,
            batch: &[StreamAppend],
            tracking: Option<&Tracking>,
        ) -> Result<Vec<u64>, PersistenceError> {
            self.appends.fetch_add(1, Ordering::Relaxed);
            self.inner().append(batch, tracking)
        }
    }

    fn event(version: u64) -> StoredEvent {
        StoredEvent {
            stream_id: "s".into(),
            version,
            topic: "T".into(),
            schema_version: 1,
            payload: b"{}".to_vec(),
            metadata: Metadata::new(),
            position: None,
        }
    }

    #[test]
    fn a_layer_intercepts_what_it_overrides_and_forwards_the_rest() {
        let store = Layered(CountAppends {
            store: MemoryRecorder::new(),
            appends: AtomicUsize::new(0),
        });
        let batch = [StreamAppend {
            stream_id: "s".into(),
            expected_version: 0,
            events: vec![event(1), event(2)],
        }];
        assert_eq!(store.append(&batch, None).ok(), Some(vec![1, 2]));
        assert_eq!(store.appends.load(Ordering::Relaxed), 1);
        let read = store.select_events("s", &EventQuery::all());
        assert_eq!(read.map(|e| e.len()).ok(), Some(2));
        let log = store.select_notifications(&NotificationQuery::new(1, 100));
        assert_eq!(log.map(|e| e.len()).ok(), Some(2));
    }
}
