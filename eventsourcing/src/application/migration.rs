//! Stored-event migration: rewriting old events in place (the seed's "update stored event").
//!
//! Upcasting on read (see [`DomainEvent::decode_stored`](crate::DomainEvent::decode_stored))
//! means old events never *need* rewriting. A [`Migration`] rewrites them anyway when that is
//! wanted: to drop old upcasters from the code, to rename topics for good, to re-encode
//! payloads under new transcoders (compression, a new key), or to fix data with a function.

use std::fmt;

use super::error::ApplicationError;
use super::event_store::EventStore;
use crate::domain::{resolve_topic, DomainError, TopicRegistration};
use crate::persistence::{Mapper, NotificationQuery, PayloadContext, StoredEvent};
use crate::trace::Timed;

/// A user function for [`Migration::with`]: gets a stored event whose payload is plain JSON
/// (transcoders already undone) and returns the replacement, or `None` to leave it as it is.
/// The replacement must keep the stream id and version; its payload is plain JSON too, and
/// the migration transcodes it.
pub type MigrateFn = fn(StoredEvent) -> Option<StoredEvent>;

#[derive(Clone, Copy)]
enum Transform {
    Upcast,
    Custom(MigrateFn),
}

/// Rewrites stored events in place, in bounded batches of the notification log.
///
/// Each batch is read by position, transformed, and written with
/// [`AdminRecorder::update_events`](crate::AdminRecorder::update_events): atomically,
/// so a crash leaves every batch either fully migrated or untouched. [`Migration::run`]
/// returns a [`MigrationProgress`] whose `next_position` is the cursor to resume from; keep it
/// where you like (the default transform is idempotent, so resuming from an earlier cursor,
/// even 1, is always safe; make a custom function idempotent too).
///
/// The default transform ([`Migration::upcast`]) brings every event of a registered topic
/// to its current schema version through the registered upcasters and renames aliased topics
/// to their canonical name. Events of topics this binary does not know are left alone and
/// counted in [`MigrationProgress::unknown`]; [`Migration::verify`] lists them.
///
/// ```
/// # use eventsourcing::application::{EventStore, Migration};
/// let store = EventStore::in_memory();
/// let migration = Migration::upcast(&store).batch_size(500);
/// let mut progress = migration.run(1)?;          // the whole log, 500 events at a time
/// assert!(progress.done);
/// // Later, or after a crash: continue where it stopped.
/// progress = migration.run(progress.next_position)?;
/// assert!(migration.verify()?.is_clean());
/// # Ok::<(), eventsourcing::ApplicationError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Migration<'a> {
    store: &'a EventStore,
    transform: Transform,
    batch_size: usize,
    max_batches: Option<usize>,
    /// Reads payloads with these transcoders instead of the store's (re-encoding).
    source: Option<&'a Mapper>,
}

impl fmt::Debug for Migration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field(
                "transform",
                &match self.transform {
                    Transform::Upcast => "upcast",
                    Transform::Custom(_) => "custom",
                },
            )
            .field("batch_size", &self.batch_size)
            .field("max_batches", &self.max_batches)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// How far a migration got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationProgress {
    /// The position to resume from (one past the last event examined).
    pub next_position: u64,
    /// Events examined.
    pub scanned: u64,
    /// Events rewritten.
    pub rewritten: u64,
    /// Events left alone because no registered type knows their topic.
    pub unknown: u64,
    /// Batches written.
    pub batches: u64,
    /// Whether the end of the log was reached.
    pub done: bool,
}

/// One stored event, by place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// Its global position.
    pub position: u64,
    /// Its stream.
    pub stream_id: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its stored topic.
    pub topic: String,
    /// Its stored schema version.
    pub schema_version: u32,
}

/// What [`Migration::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// Events examined.
    pub scanned: u64,
    /// Events stored below their topic's current version, or under an alias.
    pub outdated: Vec<EventRef>,
    /// Events that cannot be read: unknown topic, transcoding failure, bad JSON, a missing or
    /// failing upcaster, a future version. With the reason.
    pub undecodable: Vec<(EventRef, String)>,
}

impl Verification {
    /// True when every event is current and readable.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.outdated.is_empty() && self.undecodable.is_empty()
    }
}

impl<'a> Migration<'a> {
    /// Upcasts every old-version event of `store` to its topic's current version, and renames
    /// aliased topics, using the global topic registry.
    #[must_use]
    pub fn upcast(store: &'a EventStore) -> Self {
        Self {
            store,
            transform: Transform::Upcast,
            batch_size: 1000,
            max_batches: None,
            source: None,
        }
    }

    /// Rewrites events with a user function (see [`MigrateFn`]).
    #[must_use]
    pub fn with(store: &'a EventStore, function: MigrateFn) -> Self {
        Self {
            transform: Transform::Custom(function),
            ..Self::upcast(store)
        }
    }

    /// Events read and written per batch (at least 1; default 1000).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Reads stored payloads with `mapper`'s transcoders and writes them with the store's:
    /// re-encodes every event, e.g. to compress an existing store, to encrypt it, or to
    /// rotate the cipher key (`mapper` holding the old key, the store the new one). With the
    /// upcast transform every event is rewritten, current or not. Not idempotent across
    /// keys: resume a re-encoding from its cursor, not from an older one.
    #[must_use]
    pub fn reading_with(mut self, mapper: &'a Mapper) -> Self {
        self.source = Some(mapper);
        self
    }

    /// Stops after this many batches (to spread a long migration over time); `run` then
    /// returns with `done` false and the cursor to resume from.
    #[must_use]
    pub fn max_batches(mut self, batches: usize) -> Self {
        self.max_batches = Some(batches);
        self
    }

    /// Migrates from `from_position` (1 for the start of the log) to the end, or until
    /// [`Migration::max_batches`] batches were written.
    ///
    /// # Errors
    /// [`ApplicationError::MigrationStopped`] whatever stopped it, with the position to
    /// resume from (the start of the failing batch: every earlier batch is written, nothing of
    /// it is): [`ApplicationError::Migration`] naming the event a transform fails on,
    /// [`PersistenceError::EventNotFound`](crate::PersistenceError::EventNotFound) when a
    /// concurrent writer replaced an event of the batch since it was read (the batch is not
    /// written; a run from the cursor reads it again), transcoding or backend errors.
    pub fn run(&self, from_position: u64) -> Result<MigrationProgress, ApplicationError> {
        let span = Timed::new(tracing::info_span!(
            "migration",
            from_position,
            scanned = tracing::field::Empty,
            rewritten = tracing::field::Empty,
            batches = tracing::field::Empty,
            next_position = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let mut progress = MigrationProgress {
            next_position: from_position.max(1),
            ..MigrationProgress::default()
        };
        let result = span
            .in_scope(|| self.run_batches(&mut progress))
            .map_err(|source| ApplicationError::MigrationStopped {
                resume_from: progress.next_position,
                source: Box::new(source),
            });
        span.record("scanned", progress.scanned);
        span.record("rewritten", progress.rewritten);
        span.record("batches", progress.batches);
        span.record("next_position", progress.next_position);
        span.finish(&result);
        result?;
        Ok(progress)
    }

    /// The batches of [`Migration::run`]; `progress.next_position` stays at the start of a
    /// batch until the batch is written.
    fn run_batches(&self, progress: &mut MigrationProgress) -> Result<(), ApplicationError> {
        loop {
            if self
                .max_batches
                .is_some_and(|max| progress.batches >= max as u64)
            {
                return Ok(());
            }
            let query = NotificationQuery::new(progress.next_position, self.batch_size);
            let page = self.store.recorder().select_notifications(&query)?;
            let full = page.len() >= self.batch_size;
            let Some(last) = page.last().and_then(|e| e.position) else {
                progress.done = true;
                return Ok(());
            };
            let mut updates = Vec::new();
            for stored in page {
                progress.scanned += 1;
                match self.transform_one(stored)? {
                    Outcome::Rewrite(event) => updates.push(event),
                    Outcome::Keep => {}
                    Outcome::Unknown => progress.unknown += 1,
                    Outcome::UnknownRewrite(event) => {
                        progress.unknown += 1;
                        updates.push(event);
                    }
                }
            }
            if !updates.is_empty() {
                // Snapshots of the rewritten streams hold state computed from the old
                // payloads: gone first (a failure then costs only a replay, never a load that
                // differs from a full replay), and taken again by later saves.
                if let Some(snapshots) = self.store.snapshot_recorder() {
                    let mut streams: Vec<&str> =
                        updates.iter().map(|e| e.stream_id.as_str()).collect();
                    streams.sort_unstable();
                    streams.dedup();
                    for stream in streams {
                        snapshots.delete_snapshots(stream)?;
                    }
                }
                self.store.recorder().update_events(&updates)?;
                progress.rewritten += updates.len() as u64;
            }
            progress.batches += 1;
            progress.next_position = last + 1;
            if !full {
                progress.done = true;
                return Ok(());
            }
        }
    }

    /// Scans the whole log and reports events still below their topic's current version (or
    /// under an alias), and events that cannot be read with the store's transcoders. It reads payloads through the
    /// transcoders and upcasters, as far as JSON: a payload that is valid JSON but does not
    /// fit its event type is only found by decoding it with that type.
    ///
    /// # Errors
    /// Backend errors.
    pub fn verify(&self) -> Result<Verification, ApplicationError> {
        let mut report = Verification::default();
        let mut next = 1;
        loop {
            let query = NotificationQuery::new(next, self.batch_size);
            let page = self.store.recorder().select_notifications(&query)?;
            let full = page.len() >= self.batch_size;
            for stored in &page {
                report.scanned += 1;
                let place = EventRef {
                    position: stored.position.unwrap_or_default(),
                    stream_id: stored.stream_id.clone(),
                    version: stored.version,
                    topic: stored.topic.clone(),
                    schema_version: stored.schema_version,
                };
                match self.check(stored) {
                    Ok(true) => {}
                    Ok(false) => report.outdated.push(place),
                    Err(reason) => report.undecodable.push((place, reason)),
                }
            }
            match page.last().and_then(|e| e.position) {
                Some(last) if full => next = last + 1,
                _ => return Ok(report),
            }
        }
    }

    /// `Ok(true)` when current, `Ok(false)` when readable but outdated.
    /// The mapper that reads stored payloads while migrating.
    fn reader(&self) -> &Mapper {
        self.source.unwrap_or_else(|| self.store.mapper())
    }

    fn check(&self, stored: &StoredEvent) -> Result<bool, String> {
        let registration = resolve_topic(&stored.topic).map_err(|e| e.to_string())?;
        let json = self
            .store
            .mapper()
            .decode_payload(&stored.payload, &event_context(stored))
            .map_err(|e| e.to_string())?;
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| format!("payload is not JSON: {e}"))?;
        registration
            .upcast(stored.schema_version, value)
            .map_err(|e| e.to_string())?;
        Ok(is_current(registration, stored))
    }

    fn transform_one(&self, stored: StoredEvent) -> Result<Outcome, ApplicationError> {
        let position = stored.position.unwrap_or_default();
        let fail = |reason: String| ApplicationError::Migration { position, reason };
        let mapper = self.store.mapper();
        let reader = self.reader();
        match self.transform {
            Transform::Upcast => {
                let registration = match resolve_topic(&stored.topic) {
                    Ok(registration) => registration,
                    Err(DomainError::UnknownTopic { .. }) if self.source.is_some() => {
                        // Re-encode what we cannot upcast, so that it stays readable.
                        let context = event_context(&stored);
                        let json = reader
                            .decode_payload(&stored.payload, &context)?
                            .into_owned();
                        let payload = mapper.encode_payload(json, &context)?;
                        return Ok(Outcome::UnknownRewrite(StoredEvent { payload, ..stored }));
                    }
                    Err(DomainError::UnknownTopic { .. }) => return Ok(Outcome::Unknown),
                    Err(other) => return Err(fail(other.to_string())),
                };
                if self.source.is_none() && is_current(registration, &stored) {
                    return Ok(Outcome::Keep);
                }
                let json = reader.decode_payload(&stored.payload, &event_context(&stored))?;
                let value: serde_json::Value = serde_json::from_slice(&json)
                    .map_err(|e| fail(format!("payload is not JSON: {e}")))?;
                let value = registration
                    .upcast(stored.schema_version, value)
                    .map_err(|e| fail(e.to_string()))?;
                let json = serde_json::to_vec(&value).map_err(|e| fail(e.to_string()))?;
                // Bound to the topic the row will have after the rewrite.
                let context =
                    PayloadContext::event(&stored.stream_id, stored.version, registration.topic);
                let payload = mapper.encode_payload(json, &context)?;
                Ok(Outcome::Rewrite(StoredEvent {
                    topic: registration.topic.to_owned(),
                    schema_version: registration.version,
                    payload,
                    ..stored
                }))
            }
            Transform::Custom(function) => {
                let (stream_id, version) = (stored.stream_id.clone(), stored.version);
                let json = reader
                    .decode_payload(&stored.payload, &event_context(&stored))?
                    .into_owned();
                let plain = StoredEvent {
                    payload: json,
                    ..stored
                };
                let kept = self.source.is_some().then(|| plain.clone());
                let Some(mut event) = function(plain).or(kept) else {
                    return Ok(Outcome::Keep);
                };
                if event.stream_id != stream_id || event.version != version {
                    return Err(fail(format!(
                        "the migration function moved the event at version {version} of `{stream_id}` \
                         to version {} of `{}`; it must keep stream and version",
                        event.version, event.stream_id
                    )));
                }
                let json = std::mem::take(&mut event.payload);
                let payload = mapper.encode_payload(json, &event_context(&event))?;
                event.payload = payload;
                event.position = Some(position);
                Ok(Outcome::Rewrite(event))
            }
        }
    }
}

enum Outcome {
    Rewrite(StoredEvent),
    Keep,
    Unknown,
    /// An unknown topic, re-encoded only.
    UnknownRewrite(StoredEvent),
}

fn is_current(registration: &TopicRegistration, stored: &StoredEvent) -> bool {
    stored.schema_version == registration.version && stored.topic == registration.topic
}

/// The payload context of a stored event's row.
fn event_context(stored: &StoredEvent) -> PayloadContext<'_> {
    PayloadContext::event(&stored.stream_id, stored.version, &stored.topic)
}
