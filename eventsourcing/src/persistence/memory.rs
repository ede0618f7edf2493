//! The in-memory recorder: thread-safe, always available, and the test double for the others.

use crate::persistence::Conflict;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use uuid::Uuid;

use super::error::PersistenceError;
use super::lease::{
    fenced, now_micros, remaining, ttl_micros, validate_lease, Lease, LeaseRecorder, LeaseState,
};
use super::recorder::{
    check_not_tracked, validate_append, validate_text, AdminRecorder, AggregateRecorder,
    ApplicationRecorder, ProcessRecorder, SnapshotRecorder,
};
use super::stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};

/// Keeps events in process memory. Implements all three recorder traits with the same
/// guarantees as the durable ones (atomic batches, conflicts, gap-free positions), minus
/// durability.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each stream's events, contiguous, index `v - 1` holding version `v`, in `slots`
    /// (a deleted stream leaves its slot empty), so that a load reads one slice in order.
    slots: Vec<Vec<StoredEvent>>,
    /// The slot of each stream.
    streams: HashMap<String, usize>,
    /// Every event by position (`log[p - 1]` for position `p`; positions are handed out
    /// densely from 1): its slot and index there, `None` once its stream was deleted. A range
    /// of the log is a slice.
    log: Vec<Option<(usize, usize)>>,
    /// The highest position still in the log (0 when none).
    max_live: u64,
    by_event_id: HashMap<Uuid, u64>,
    tracking: HashMap<String, BTreeSet<u64>>,
    /// Leases by name: owner, epoch, expiry (µs since the Unix epoch).
    leases: BTreeMap<String, (String, u64, i64)>,
    /// Each stream's snapshots by version.
    snapshots: HashMap<String, BTreeMap<u64, StoredSnapshot>>,
    last_position: u64,
}

impl MemoryRecorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated: writes are applied
        // only after every check has passed, so the poisoned state is still consistent.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// The events of `stream_id`, oldest first.
    fn stream(&self, stream_id: &str) -> &[StoredEvent] {
        self.streams
            .get(stream_id)
            .and_then(|&slot| self.slots.get(slot))
            .map_or(&[], Vec::as_slice)
    }

    /// The event at `position`.
    fn at(&self, position: u64) -> Option<&StoredEvent> {
        let index = usize::try_from(position.checked_sub(1)?).ok()?;
        let (slot, index) = (*self.log.get(index)?)?;
        self.slots.get(slot)?.get(index)
    }

    fn check(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<(), PersistenceError> {
        validate_append(batch, tracking)?;
        // First, as on the other backends: a fenced committer learns nothing else.
        if let Some(lease) = tracking.and_then(|t| t.lease.as_ref()) {
            let held = self
                .leases
                .get(&lease.name)
                .is_some_and(|(owner, epoch, expires)| {
                    *owner == lease.owner && *epoch == lease.epoch && *expires > now_micros()
                });
            if !held {
                return Err(fenced(lease));
            }
        }
        for append in batch {
            let actual = self.stream(&append.stream_id).len() as u64;
            if actual != append.expected_version {
                return Err(PersistenceError::Conflict(Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected_version,
                    actual,
                }));
            }
            for event in &append.events {
                if self.by_event_id.contains_key(&event.metadata.event_id) {
                    return Err(PersistenceError::InvalidBatch {
                        stream_id: append.stream_id.clone(),
                        reason: format!("event id {} is already stored", event.metadata.event_id),
                    });
                }
            }
        }
        if let Some(t) = tracking {
            let max = self
                .tracking
                .get(&t.upstream)
                .and_then(|s| s.last().copied());
            check_not_tracked(t, max)?;
        }
        Ok(())
    }

    fn apply(&mut self, batch: &[StreamAppend], tracking: Option<&Tracking>) -> Vec<u64> {
        let mut positions = Vec::with_capacity(batch.iter().map(|a| a.events.len()).sum());
        for append in batch {
            if append.events.is_empty() {
                // A version assertion only: nothing to record, no stream entry to create.
                continue;
            }
            // One lookup and one copy of the stream id per stream, not per event.
            let next_slot = self.slots.len();
            let slot = *self
                .streams
                .entry(append.stream_id.clone())
                .or_insert(next_slot);
            if slot == next_slot {
                self.slots.push(Vec::new());
            }
            let Some(stream) = self.slots.get_mut(slot) else {
                continue;
            };
            stream.reserve(append.events.len());
            for event in &append.events {
                self.last_position += 1;
                let position = self.last_position;
                let mut stored = event.clone();
                stored.position = Some(position);
                self.by_event_id.insert(stored.metadata.event_id, position);
                self.log.push(Some((slot, stream.len())));
                self.max_live = position;
                stream.push(stored);
                positions.push(position);
            }
        }
        if let Some(t) = tracking {
            self.tracking
                .entry(t.upstream.clone())
                .or_default()
                .insert(t.position);
        }
        positions
    }

    fn append(
        &mut self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.check(batch, tracking)?;
        Ok(self.apply(batch, tracking))
    }
}

impl AggregateRecorder for MemoryRecorder {
    fn append(
        &self,
        batch: &[StreamAppend],
        tracking: Option<&Tracking>,
    ) -> Result<Vec<u64>, PersistenceError> {
        self.write().append(batch, tracking)
    }

    fn for_each_event(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let inner = self.read();
        let limit = query.limit.unwrap_or(usize::MAX);
        let in_range = inner
            .stream(stream_id)
            .iter()
            .filter(|e| query.contains(e.version));
        let mut lend = |e: &StoredEvent| visit(e.as_ref());
        let _ = if query.descending {
            in_range.rev().take(limit).try_for_each(&mut lend)
        } else {
            in_range.take(limit).try_for_each(&mut lend)
        };
        Ok(())
    }
}

impl AdminRecorder for MemoryRecorder {
    fn event_by_id(&self, event_id: Uuid) -> Result<Option<StoredEvent>, PersistenceError> {
        let inner = self.read();
        Ok(inner
            .by_event_id
            .get(&event_id)
            .and_then(|&p| inner.at(p))
            .cloned())
    }

    fn delete_stream(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        let mut inner = self.write();
        inner.snapshots.remove(stream_id);
        let Some(slot) = inner.streams.remove(stream_id) else {
            return Ok(0);
        };
        let events = inner
            .slots
            .get_mut(slot)
            .map(std::mem::take)
            .unwrap_or_default();
        for event in &events {
            inner.by_event_id.remove(&event.metadata.event_id);
            let entry = event
                .position
                .and_then(|p| usize::try_from(p.checked_sub(1)?).ok())
                .and_then(|i| inner.log.get_mut(i));
            if let Some(entry) = entry {
                *entry = None;
            }
        }
        // The highest live position moves down past the deleted tail, if it was there.
        while inner.max_live > 0 && inner.at(inner.max_live).is_none() {
            inner.max_live -= 1;
        }
        Ok(events.len() as u64)
    }

    fn update_events(&self, events: &[StoredEvent]) -> Result<(), PersistenceError> {
        validate_text(events)?;
        let mut inner = self.write();
        let mut targets = Vec::with_capacity(events.len());
        for event in events {
            let target = usize::try_from(event.version)
                .ok()
                .and_then(|v| v.checked_sub(1))
                .and_then(|i| Some((*inner.streams.get(&event.stream_id)?, i)))
                // Compare and swap: the stored event must be the one that was read.
                .filter(|&(slot, i)| {
                    inner
                        .slots
                        .get(slot)
                        .and_then(|events| events.get(i))
                        .is_some_and(|s| s.metadata.event_id == event.metadata.event_id)
                })
                .ok_or_else(|| PersistenceError::EventNotFound {
                    stream_id: event.stream_id.clone(),
                    version: event.version,
                })?;
            targets.push(target);
        }
        for (event, (slot, i)) in events.iter().zip(targets) {
            // The event id is the stored one (checked above): the index stays as it is.
            if let Some(stored) = inner
                .slots
                .get_mut(slot)
                .and_then(|events| events.get_mut(i))
            {
                stored.topic.clone_from(&event.topic);
                stored.schema_version = event.schema_version;
                stored.payload.clone_from(&event.payload);
                stored.metadata = event.metadata.clone();
            }
        }
        Ok(())
    }
}

impl ApplicationRecorder for MemoryRecorder {
    fn select_notifications_into(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let inner = self.read();
        let upper = query.to_position.unwrap_or(u64::MAX);
        if query.from_position > upper {
            return Ok(());
        }
        let first = usize::try_from(query.from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let end = usize::try_from(upper)
            .unwrap_or(usize::MAX)
            .min(inner.log.len());
        into.extend(
            inner
                .log
                .get(first..end)
                .unwrap_or_default()
                .iter()
                .filter_map(|entry| {
                    let (slot, index) = (*entry)?;
                    inner.slots.get(slot)?.get(index)
                })
                .filter(|e| query.topics.is_empty() || query.topics.contains(&e.topic))
                .take(query.limit)
                .cloned(),
        );
        Ok(())
    }

    fn max_position(&self) -> Result<u64, PersistenceError> {
        Ok(self.read().max_live)
    }
}

impl ProcessRecorder for MemoryRecorder {
    fn leases(&self) -> Option<&dyn LeaseRecorder> {
        Some(self)
    }

    fn max_tracking_position(&self, upstream: &str) -> Result<Option<u64>, PersistenceError> {
        Ok(self
            .read()
            .tracking
            .get(upstream)
            .and_then(|s| s.last().copied()))
    }
}

impl LeaseRecorder for MemoryRecorder {
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, PersistenceError> {
        validate_lease(name, owner)?;
        let now = now_micros();
        let expires = now.saturating_add(ttl_micros(ttl));
        let mut inner = self.write();
        let row = inner
            .leases
            .entry(name.to_owned())
            .or_insert_with(|| (owner.to_owned(), 0, i64::MIN));
        let held = row.2 > now;
        if held && row.0 != owner {
            return Ok(None);
        }
        if !held {
            *row = (owner.to_owned(), row.1 + 1, expires);
        } else {
            row.2 = expires;
        }
        Ok(Some(Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            epoch: row.1,
        }))
    }

    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, PersistenceError> {
        let now = now_micros();
        let mut inner = self.write();
        match inner.leases.get_mut(&lease.name) {
            Some(row) if row.0 == lease.owner && row.1 == lease.epoch && row.2 > now => {
                row.2 = now.saturating_add(ttl_micros(ttl));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let mut inner = self.write();
        if let Some(row) = inner.leases.get_mut(&lease.name) {
            if row.0 == lease.owner && row.1 == lease.epoch {
                row.2 = i64::MIN;
            }
        }
        Ok(())
    }

    fn remove_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let now = now_micros();
        let mut inner = self.write();
        let gone = inner
            .leases
            .get(&lease.name)
            .is_some_and(|(owner, epoch, expires)| {
                *owner == lease.owner && *epoch == lease.epoch && *expires <= now
            });
        if gone {
            inner.leases.remove(&lease.name);
        }
        Ok(())
    }

    fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseState>, PersistenceError> {
        let now = now_micros();
        let inner = self.read();
        Ok(inner
            .leases
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, (owner, epoch, expires))| LeaseState {
                name: name.clone(),
                owner: owner.clone(),
                epoch: *epoch,
                expires_in: remaining(*expires, now),
            })
            .collect())
    }
}

impl SnapshotRecorder for MemoryRecorder {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        self.write()
            .snapshots
            .entry(snapshot.stream_id.clone())
            .or_default()
            .insert(snapshot.version, snapshot.clone());
        Ok(())
    }

    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let inner = self.read();
        Ok(inner.snapshots.get(stream_id).and_then(|by_version| {
            by_version
                .range(..=at_most_version.unwrap_or(u64::MAX))
                .next_back()
                .map(|(_, s)| s.clone())
        }))
    }

    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        Ok(self
            .write()
            .snapshots
            .remove(stream_id)
            .map_or(0, |s| s.len() as u64))
    }
}
