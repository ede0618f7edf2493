//! `Application`: saves aggregates atomically, loads them, and exposes the notification log.

use std::sync::Arc;

use uuid::Uuid;

use super::bus::EventBus;
use super::error::ApplicationError;
use super::event_store::{EventStore, Saved};
use super::notification_log::NotificationLog;
use super::repository::Repository;
use super::saveable::Saveable;
use crate::domain::{validate_registry, Aggregate, Entity};
use crate::persistence::{Mapper, MemoryRecorder, StoredEvent};
use crate::trace::{metrics, Timed};

/// An event-sourced application: an event store, repositories over it, a notification log and
/// an in-process bus on which saved events are published after they commit.
///
/// Dropping the application closes its store (connections are released when the last clone
/// of the store goes).
#[derive(Debug, Clone)]
pub struct Application {
    pub(super) store: EventStore,
    pub(super) bus: EventBus,
}

impl Application {
    /// An application keeping its events (and snapshots) in memory.
    ///
    /// # Errors
    /// A registry problem (duplicate topic, missing upcaster) found by
    /// [`validate_registry`](crate::domain::validate_registry), as when the application is
    /// opened from a URL.
    pub fn in_memory() -> Result<Self, ApplicationError> {
        Self::with_store(EventStore::with_storage(
            Arc::new(MemoryRecorder::new()),
            Mapper::new(),
        ))
    }

    /// An application over an existing event store.
    ///
    /// # Errors
    /// A registry problem, as [`Application::in_memory`].
    pub fn with_store(store: EventStore) -> Result<Self, ApplicationError> {
        validate_registry()?;
        Ok(Self::from_parts(store, EventBus::new()))
    }

    /// An application over `store` publishing on `bus`, without the registry check (which
    /// the public constructors run).
    pub(crate) fn from_parts(store: EventStore, bus: EventBus) -> Self {
        Self { store, bus }
    }

    /// Saves the pending events of one or more aggregates in one atomic append:
    /// `app.save(&mut dog)`, `app.save((&mut from, &mut to))` or `app.save(vec![&mut a, &mut b])`.
    ///
    /// Each aggregate's stream must still be at the version it was loaded at; otherwise the
    /// save fails with [`ApplicationError::Conflict`], nothing is written and the aggregates
    /// keep their pending events. On success the pending events are cleared and published on
    /// the bus, in order.
    ///
    /// # Errors
    /// Conflict, a broken [`Limits`](crate::persistence::Limits) (checked before any I/O), encoding or backend errors;
    /// [`ApplicationError::Publish`] when the events were
    /// committed but a bus subscriber failed.
    pub fn save<S: Saveable>(&self, aggregates: S) -> Result<Saved, ApplicationError> {
        let span = Timed::new(tracing::info_span!(
            "save",
            streams = tracing::field::Empty,
            events = tracing::field::Empty,
            last_position = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.save_traced(aggregates, &span));
        span.finish(&result);
        if matches!(&result, Err(error) if error.is_conflict()) {
            metrics::conflict();
        }
        result
    }

    fn save_traced<S: Saveable>(
        &self,
        mut aggregates: S,
        span: &Timed,
    ) -> Result<Saved, ApplicationError> {
        let mut appends = Vec::new();
        aggregates.collect_appends(self.store.mapper(), &mut appends)?;
        if span.enabled() {
            span.record("streams", appends.len());
            span.record(
                "events",
                appends.iter().map(|a| a.events.len()).sum::<usize>(),
            );
        }
        if appends.is_empty() {
            return Ok(Saved::default());
        }
        let mut snapshots = Vec::new();
        if self.store.snapshot_recorder().is_some() {
            aggregates.collect_snapshots(&self.store, &mut snapshots)?;
        }
        let Saved {
            positions,
            snapshots,
        } = self.store.commit(&appends, None, snapshots)?;
        aggregates.mark_saved();
        metrics::saved(appends.iter().map(|a| a.events.len()).sum());
        if let Some(last) = positions.last() {
            span.record("last_position", *last);
        }
        if self.bus.has_subscribers() {
            let mut published: Vec<StoredEvent> =
                appends.into_iter().flat_map(|a| a.events).collect();
            for (event, position) in published.iter_mut().zip(&positions) {
                event.position = Some(*position);
            }
            self.bus
                .publish(&published)
                .map_err(|source| ApplicationError::Publish {
                    last_position: positions.last().copied().unwrap_or_default(),
                    source,
                })?;
        }
        Ok(Saved {
            positions,
            snapshots,
        })
    }

    /// Takes a snapshot of an aggregate at its latest version (`at` = `None`) or at version
    /// `at`; returns the version snapshotted. Shortcut for
    /// `self.repository::<T>().take_snapshot(id, at)`.
    ///
    /// # Errors
    /// As [`Repository::take_snapshot`].
    pub fn take_snapshot<T: Entity>(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<u64, ApplicationError> {
        self.repository::<T>().take_snapshot(id, at)
    }

    /// A repository for entities of type `T`.
    #[must_use]
    pub fn repository<T: Entity>(&self) -> Repository<'_, T> {
        Repository::new(&self.store)
    }

    /// Shortcut for `self.repository::<T>().get(id)`.
    ///
    /// # Errors
    /// As [`Repository::get`].
    pub fn get<T: Entity>(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        self.repository().get(id)
    }

    /// The notification log: every event in global order.
    #[must_use]
    pub fn notification_log(&self) -> NotificationLog<'_> {
        NotificationLog::new(&self.store)
    }

    /// The event store.
    #[must_use]
    pub fn event_store(&self) -> &EventStore {
        &self.store
    }

    /// The bus on which saved events are published after commit.
    #[must_use]
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Closes the application; the same as dropping it, spelled out.
    pub fn close(self) {}
}
