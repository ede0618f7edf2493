//! Helpers for backends that need a resource to outlive the store: a temporary database file
//! and a store wrapper that keeps such a guard alive.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventsourcing::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, NotificationQuery, PersistenceError,
    ProcessRecorder, SnapshotRecorder, Storage, StoredEvent, StoredSnapshot, StreamAppend,
    Tracking,
};
use uuid::Uuid;

/// A unique database file path under the system temporary directory; the file and its SQLite
/// companions (`-wal`, `-shm`, `-journal`) are removed when this is dropped.
#[derive(Debug)]
pub struct TempDb(PathBuf);

impl TempDb {
    /// A fresh path (the file is not created) whose name starts with `label`.
    #[must_use]
    pub fn new(label: &str) -> Self {
        Self(std::env::temp_dir().join(format!("es-{label}-{}.db", Uuid::now_v7())))
    }

    /// The database path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            // Best effort: a file that is already gone is fine.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A store that keeps `guard` alive as long as itself (e.g. a [`TempDb`] to delete after the
/// recorder has closed its connections), forwarding every call to `store`.
pub struct Guarded<G> {
    store: Arc<dyn Storage>,
    _guard: G,
}

impl<G: Send + Sync + 'static> Guarded<G> {
    /// Wraps `store`; `guard` drops after it.
    pub fn store(store: Arc<dyn Storage>, guard: G) -> Arc<dyn Storage> {
        Arc::new(Self {
            store,
            _guard: guard,
        })
    }
}

impl<G: Send + Sync> AggregateRecorder for Guarded<G> {
    fn append(&self, batch: &[StreamAppend]) -> Result<Vec<u64>, PersistenceError> {
        self.store.append(batch)
    }
    fn select_events(
        &self,
        stream_id: &str,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        self.store.select_events(stream_id, query)
    }
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        self.store.event_by_id(event_id)
    }
    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.store.delete_stream(stream_id)
    }
    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        self.store.update_events(events)
    }
}

impl<G: Send + Sync> ApplicationRecorder for Guarded<G> {
    fn select_notifications(
        &self,
        query: &NotificationQuery,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        self.store.select_notifications(query)
    }
    fn max_position(&self) -> Result<u64, PersistenceError> {
        self.store.max_position()
    }
}

impl<G: Send + Sync> ProcessRecorder for Guarded<G> {
    fn append_tracked(
        &self,
        batch: &[StreamAppend],
        tracking: &Tracking,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.store.append_tracked(batch, tracking)
    }
    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        self.store.max_tracking_position(upstream)
    }
}

impl<G: Send + Sync> SnapshotRecorder for Guarded<G> {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.store.put_snapshot(snapshot)
    }
    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        self.store.latest_snapshot(stream_id, at_most_version)
    }
    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.store.delete_snapshots(stream_id)
    }
}
