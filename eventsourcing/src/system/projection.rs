//! Catch-up projections: read models built from an upstream log, that can be added at any
//! time (they start from position 1) and rebuilt (reset, then replay).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::persistence::{BoxError, StoredEvent};
use crate::trace::Timed;

use super::error::SystemError;
use super::follow::{catch_up, Follower, Notification, Upstream, DEFAULT_PAGE_SIZE};

/// A read model kept in memory and rebuilt from the log at start, driven by a [`Projector`].
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::persistence::BoxError;
/// use eventsourcing::system::{Notification, Projection, Projector, Upstream};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Note { text: String }
/// #[entity]
/// impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
///
/// #[derive(Default)]
/// struct Letters(usize);
///
/// impl Projection for Letters {
///     fn name(&self) -> &str { "letters" }
///     fn apply(&mut self, event: &Notification<'_>) -> Result<(), BoxError> {
///         if let Some(NoteEvent::Written { text }) = event.decode::<NoteEvent>()?.map(|e| e.event) {
///             self.0 += text.len();
///         }
///         Ok(())
///     }
///     fn reset(&mut self) { self.0 = 0; }
/// }
///
/// let notes = Application::in_memory()?;
/// notes.save(&mut Note::write("hello".into()))?;
/// let mut letters = Projector::new(Letters::default(), Upstream::application("notes", &notes));
/// letters.run_until_caught_up()?;
/// notes.save(&mut Note::write("world".into()))?;
/// letters.run_until_caught_up()?;
/// assert_eq!(letters.projection().0, 10);
/// assert_eq!(letters.rebuild()?, 2);         // reset and replay: the same state
/// assert_eq!(letters.projection().0, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Projection: Send {
    /// The projection's name, in errors and runner reports.
    fn name(&self) -> &str;

    /// Only events with these topics are read (all when empty, the default).
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// Applies one event. On `Err` the state must be as before the call: the projector does
    /// not advance, and the next pull applies the event again.
    ///
    /// # Errors
    /// Whatever stops the event from being applied.
    fn apply(&mut self, event: &Notification<'_>) -> Result<(), BoxError>;

    /// Clears the state, before a rebuild.
    fn reset(&mut self);
}

/// Drives an in-memory [`Projection`]: its position lives beside its state, so both are
/// rebuilt together at start (from position 1) and neither can get ahead of the other.
#[derive(Debug)]
pub struct Projector<P> {
    projection: P,
    upstream: Upstream,
    topics: Vec<String>,
    position: u64,
    page_size: usize,
    pause: Pause,
}

impl<P: Projection> Projector<P> {
    /// A projector at position 0: the first pull starts from the beginning of the log.
    pub fn new(projection: P, upstream: Upstream) -> Self {
        let topics = projection.topics();
        Self {
            projection,
            upstream,
            topics,
            position: 0,
            page_size: DEFAULT_PAGE_SIZE,
            pause: Pause::default(),
        }
    }

    /// The handle that pauses and resumes this projector, from any thread.
    #[must_use]
    pub fn pause_handle(&self) -> Pause {
        self.pause.clone()
    }

    /// Clears the state and the position without replaying (the next pull starts from the
    /// beginning of the log).
    pub fn reset(&mut self) {
        self.projection.reset();
        self.position = 0;
    }

    /// Reads `page_size` events per page (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The read model.
    #[must_use]
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The read model, consuming the projector.
    #[must_use]
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// The last position applied (0 when none).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Applies one page of events after the current position; returns how many were read.
    ///
    /// # Errors
    /// Reading upstream, or [`SystemError::Projection`] for the first event the projection
    /// rejects (the events before it stay applied, the position stops before it).
    ///
    /// A paused projector reads nothing (returns 0).
    pub fn pull(&mut self) -> Result<usize, SystemError> {
        if self.pause.is_paused() {
            return Ok(0);
        }
        let name = self.projection.name().to_owned();
        let read = crate::trace::pull(&name, || self.pull_page())?;
        crate::trace::metrics::follower_lag(&name, || {
            let end = self.upstream.max_position().ok()?;
            Some(end.saturating_sub(self.position))
        });
        Ok(read)
    }

    fn pull_page(&mut self) -> Result<usize, SystemError> {
        let page = self
            .upstream
            .select(self.position + 1, self.page_size, &self.topics)?;
        let span = Timed::new(tracing::debug_span!(
            "project",
            projection = self.projection.name(),
            from_position = self.position + 1,
            events = page.len(),
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.apply_page(&page));
        span.finish(&result);
        result?;
        Ok(page.len())
    }

    fn apply_page(&mut self, page: &[StoredEvent]) -> Result<(), SystemError> {
        for event in page {
            let notification = Notification::new(event, self.upstream.mapper());
            let position = notification.position();
            self.projection
                .apply(&notification)
                .map_err(|source| SystemError::Projection {
                    projection: self.projection.name().to_owned(),
                    position,
                    source,
                })?;
            self.position = position;
        }
        Ok(())
    }

    /// Pulls until caught up; returns how many events were read.
    ///
    /// # Errors
    /// As [`Projector::pull`].
    pub fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        catch_up(self.page_size, || self.pull())
    }

    /// Resets the state and the position, then replays the whole log; returns how many events
    /// were read.
    ///
    /// # Errors
    /// As [`Projector::pull`].
    pub fn rebuild(&mut self) -> Result<u64, SystemError> {
        self.reset();
        self.run_until_caught_up()
    }
}

impl<P: Projection> Follower for Projector<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn position(&self) -> Result<u64, SystemError> {
        Ok(self.position)
    }

    fn pull(&mut self) -> Result<usize, SystemError> {
        Projector::pull(self)
    }
}

/// A read model whose state and position live in a durable store that the projection owns
/// (a SQL database, a file...), driven by a [`DurableProjector`].
///
/// The contract that gives exactly-once effects: [`DurableProjection::apply_batch`] writes
/// the effects of the events **and** the new position in one transaction of that store, and
/// [`DurableProjection::position`] reads the position back from it. A crash between batches
/// loses nothing (the next pull starts after the committed position) and a crash inside a
/// batch commits nothing of it. `docs/SYSTEM.md` has a worked SQLite example.
pub trait DurableProjection: Send {
    /// The projection's name, in errors and runner reports.
    fn name(&self) -> &str;

    /// Only events with these topics are read (all when empty, the default).
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// The last upstream position whose effects are committed (0 when none).
    ///
    /// # Errors
    /// Store failures.
    fn position(&self) -> Result<u64, BoxError>;

    /// Applies `events` (in position order, not empty) and records `position` (the position
    /// of the last one) in one transaction. On `Err` nothing of the batch may be committed.
    ///
    /// # Errors
    /// Whatever stops the batch; the next pull reads it again.
    fn apply_batch(&mut self, events: &[Notification<'_>], position: u64) -> Result<(), BoxError>;

    /// Deletes the read model and sets the position to 0, in one transaction, before a
    /// rebuild.
    ///
    /// # Errors
    /// Store failures.
    fn reset(&mut self) -> Result<(), BoxError>;
}

/// Drives a [`DurableProjection`]: reads a page after its committed position and hands it to
/// [`DurableProjection::apply_batch`].
#[derive(Debug)]
pub struct DurableProjector<P> {
    projection: P,
    upstream: Upstream,
    topics: Vec<String>,
    page_size: usize,
    pause: Pause,
}

impl<P: DurableProjection> DurableProjector<P> {
    /// A projector that resumes from the projection's committed position.
    pub fn new(projection: P, upstream: Upstream) -> Self {
        let topics = projection.topics();
        Self {
            projection,
            upstream,
            topics,
            page_size: DEFAULT_PAGE_SIZE,
            pause: Pause::default(),
        }
    }

    /// The handle that pauses and resumes this projector, from any thread.
    #[must_use]
    pub fn pause_handle(&self) -> Pause {
        self.pause.clone()
    }

    /// Deletes the read model and sets its position to 0 ([`DurableProjection::reset`])
    /// without replaying: the next pull starts from the beginning of the log.
    ///
    /// # Errors
    /// [`SystemError::Projection`] when the projection's store fails.
    pub fn reset(&mut self) -> Result<(), SystemError> {
        self.projection
            .reset()
            .map_err(|source| self.error(0, source))
    }

    /// Reads `page_size` events per batch (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The projection.
    #[must_use]
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, mutably.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// The projection, consuming the projector.
    #[must_use]
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// The upstream log.
    #[must_use]
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The committed position.
    ///
    /// # Errors
    /// [`SystemError::Projection`] when the projection's store fails.
    pub fn position(&self) -> Result<u64, SystemError> {
        self.projection
            .position()
            .map_err(|source| self.error(0, source))
    }

    /// Applies one page after the committed position, in one batch; returns how many events
    /// were read.
    ///
    /// # Errors
    /// Reading upstream, or [`SystemError::Projection`] (nothing of the page committed).
    ///
    /// A paused projector reads nothing (returns 0).
    pub fn pull(&mut self) -> Result<usize, SystemError> {
        if self.pause.is_paused() {
            return Ok(0);
        }
        let name = self.projection.name().to_owned();
        let read = crate::trace::pull(&name, || self.pull_page())?;
        crate::trace::metrics::follower_lag(&name, || {
            let end = self.upstream.max_position().ok()?;
            Some(end.saturating_sub(self.position().ok()?))
        });
        Ok(read)
    }

    fn pull_page(&mut self) -> Result<usize, SystemError> {
        let from = self.position()? + 1;
        let page = self.upstream.select(from, self.page_size, &self.topics)?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            return Ok(0);
        };
        let mapper = self.upstream.mapper();
        let notifications: Vec<Notification<'_>> =
            page.iter().map(|e| Notification::new(e, mapper)).collect();
        let span = Timed::new(tracing::debug_span!(
            "project",
            projection = self.projection.name(),
            from_position = from,
            events = page.len(),
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.projection.apply_batch(&notifications, last));
        span.finish(&result);
        result.map_err(|source| SystemError::Projection {
            projection: self.projection.name().to_owned(),
            position: from,
            source,
        })?;
        Ok(page.len())
    }

    /// Pulls until caught up; returns how many events were read.
    ///
    /// # Errors
    /// As [`DurableProjector::pull`].
    pub fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        catch_up(self.page_size, || self.pull())
    }

    /// Resets the read model and its position, then replays the whole log; returns how many
    /// events were read.
    ///
    /// # Errors
    /// As [`DurableProjector::pull`].
    pub fn rebuild(&mut self) -> Result<u64, SystemError> {
        self.reset()?;
        self.run_until_caught_up()
    }

    fn error(&self, position: u64, source: BoxError) -> SystemError {
        SystemError::Projection {
            projection: self.projection.name().to_owned(),
            position,
            source,
        }
    }
}

impl<P: DurableProjection> Follower for DurableProjector<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn position(&self) -> Result<u64, SystemError> {
        DurableProjector::position(self)
    }

    fn pull(&mut self) -> Result<usize, SystemError> {
        DurableProjector::pull(self)
    }
}

/// Pauses and resumes a projector from any thread (an admin endpoint, a signal handler):
/// a paused projector's pulls read nothing until it is resumed, and its position and state
/// stay as they were. Cloning gives another handle to the same switch.
#[derive(Debug, Clone, Default)]
pub struct Pause(Arc<AtomicBool>);

impl Pause {
    /// Pauses: the next pull reads nothing (a pull in progress finishes its page).
    pub fn pause(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Resumes: the next pull carries on from the committed position.
    pub fn resume(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether it is paused.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A durable projection kept in versions side by side: each version has storage of its own
/// (its own tables, say `orders_v2`), so a new version can be built while the old one keeps
/// serving readers.
pub trait VersionedProjection: DurableProjection {
    /// This version's number (in reports).
    fn version(&self) -> u32;

    /// Deletes this version's storage, after readers were switched to a newer version.
    ///
    /// # Errors
    /// Store failures.
    fn drop_version(&mut self) -> Result<(), BoxError>;
}

/// Rebuilds a durable projection side by side: [`SideBySide::start_rebuild`] begins building
/// a new version from the start of the log while the serving version keeps following it;
/// once the new version has caught up with the serving one, `switch` makes it the one
/// readers see (in one step of the read model's store: update a pointer row, replace a view,
/// swap an `Arc`), then the old version is dropped. Until the switch, readers only ever see
/// the old version, whole; after it, only the new one.
///
/// ```
/// use std::sync::{Arc, RwLock};
/// use eventsourcing::prelude::*;
/// use eventsourcing::persistence::BoxError;
/// use eventsourcing::system::{DurableProjection, Notification, SideBySide, Upstream, VersionedProjection};
///
/// /// Counts events; version 2 counts them twice. Readers see `served`.
/// struct Count { version: u32, count: u64, position: u64 }
/// impl DurableProjection for Count {
///     fn name(&self) -> &str { "count" }
///     fn position(&self) -> Result<u64, BoxError> { Ok(self.position) }
///     fn apply_batch(&mut self, events: &[Notification<'_>], position: u64) -> Result<(), BoxError> {
///         self.count += events.len() as u64 * u64::from(self.version);
///         self.position = position;
///         Ok(())
///     }
///     fn reset(&mut self) -> Result<(), BoxError> { self.count = 0; self.position = 0; Ok(()) }
/// }
/// impl VersionedProjection for Count {
///     fn version(&self) -> u32 { self.version }
///     fn drop_version(&mut self) -> Result<(), BoxError> { Ok(()) }
/// }
///
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Note { text: String }
/// # #[entity]
/// # impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
/// let notes = Application::in_memory()?;
/// notes.save(&mut Note::write("a".into()))?;
/// let served = Arc::new(RwLock::new(1u32)); // which version readers query
/// let switch_to = Arc::clone(&served);
/// let mut counts = SideBySide::new(
///     Count { version: 1, count: 0, position: 0 },
///     Upstream::application("notes", &notes),
///     move |next: &Count| { *switch_to.write().map_err(|e| e.to_string())? = next.version; Ok(()) },
/// );
/// counts.run_until_caught_up()?;
/// counts.start_rebuild(Count { version: 2, count: 0, position: 0 })?;
/// notes.save(&mut Note::write("b".into()))?;
/// counts.run_until_caught_up()?; // builds v2, switches, drops v1
/// assert_eq!(*served.read().unwrap(), 2);
/// assert_eq!(counts.serving().count, 4);
/// assert!(counts.building().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SideBySide<P> {
    serving: DurableProjector<P>,
    building: Option<DurableProjector<P>>,
    /// A version switched away from whose drop failed: dropped again at the next pull.
    retired: Option<DurableProjector<P>>,
    page_size: usize,
    switch: Switch<P>,
}

/// What makes a caught-up version the one readers see.
type Switch<P> = Box<dyn FnMut(&P) -> Result<(), BoxError> + Send>;

impl<P> std::fmt::Debug for SideBySide<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideBySide")
            .field("building", &self.building.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: VersionedProjection> SideBySide<P> {
    /// Serves `serving` (resuming from its committed position); `switch` makes a caught-up
    /// new version the one readers see.
    pub fn new(
        serving: P,
        upstream: Upstream,
        switch: impl FnMut(&P) -> Result<(), BoxError> + Send + 'static,
    ) -> Self {
        Self {
            serving: DurableProjector::new(serving, upstream),
            building: None,
            retired: None,
            page_size: DEFAULT_PAGE_SIZE,
            switch: Box::new(switch),
        }
    }

    /// Reads `page_size` events per batch, in both versions (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self.serving.page_size = self.page_size;
        if let Some(building) = &mut self.building {
            building.page_size = self.page_size;
        }
        self
    }

    /// The version readers see.
    #[must_use]
    pub fn serving(&self) -> &P {
        self.serving.projection()
    }

    /// The version being built, if any.
    #[must_use]
    pub fn building(&self) -> Option<&P> {
        self.building.as_ref().map(DurableProjector::projection)
    }

    /// The handle that pauses and resumes both versions.
    #[must_use]
    pub fn pause_handle(&self) -> Pause {
        self.serving.pause_handle()
    }

    /// Starts building `next` from the beginning of the log (resetting it first), beside the
    /// serving version. A rebuild already in progress is replaced (its storage dropped
    /// first, since it may be the same storage).
    ///
    /// # Errors
    /// [`SystemError::Projection`] when a store fails, or `next` is the serving version.
    pub fn start_rebuild(&mut self, next: P) -> Result<(), SystemError> {
        self.check_version(&next)?;
        // The rebuild it replaces is dropped first: it may share the new one's storage.
        self.replace_building(None)?;
        let mut building =
            DurableProjector::new(next, self.serving.upstream().clone()).page_size(self.page_size);
        building.pause = self.serving.pause.clone();
        building.reset()?;
        self.building = Some(building);
        Ok(())
    }

    /// Carries on building `next` from its committed position (after a restart in the middle
    /// of a rebuild).
    ///
    /// # Errors
    /// [`SystemError::Projection`] when a store fails, or `next` is the serving version.
    pub fn resume_rebuild(&mut self, next: P) -> Result<(), SystemError> {
        self.check_version(&next)?;
        let mut building =
            DurableProjector::new(next, self.serving.upstream().clone()).page_size(self.page_size);
        building.pause = self.serving.pause.clone();
        match &self.building {
            // The same version again (a restart): keep its storage.
            Some(current) if current.projection().version() == building.projection().version() => {
                self.building = Some(building);
                Ok(())
            }
            _ => self.replace_building(Some(building)),
        }
    }

    /// Refuses to build the version that serves: resetting it would empty what readers see.
    fn check_version(&self, next: &P) -> Result<(), SystemError> {
        if next.version() == self.serving.projection().version() {
            return Err(self.serving.error(
                0,
                format!(
                    "version {} is the serving version: build a new version beside it",
                    next.version()
                )
                .into(),
            ));
        }
        Ok(())
    }

    /// Abandons the rebuild in progress and drops its storage.
    ///
    /// # Errors
    /// [`SystemError::Projection`] when its store fails.
    pub fn cancel_rebuild(&mut self) -> Result<(), SystemError> {
        self.replace_building(None)
    }

    fn replace_building(
        &mut self,
        building: Option<DurableProjector<P>>,
    ) -> Result<(), SystemError> {
        if let Some(mut old) = std::mem::replace(&mut self.building, building) {
            old.projection
                .drop_version()
                .map_err(|source| old.error(0, source))?;
        }
        Ok(())
    }

    /// Drops the version switched away from, if its drop failed before.
    fn drop_retired(&mut self) -> Result<(), SystemError> {
        if let Some(retired) = &mut self.retired {
            retired
                .projection
                .drop_version()
                .map_err(|source| retired.error(0, source))?;
            self.retired = None;
        }
        Ok(())
    }

    /// One page of the serving version and one of the version being built; switches when the
    /// new version has reached the serving one's position, or when both read nothing (both
    /// at the end of the log: their positions differ when they follow different topics).
    /// Returns the events read by both.
    ///
    /// # Errors
    /// As [`DurableProjector::pull`]; a failing `switch` leaves the old version serving and
    /// the new one built (the next pull tries the switch again); a failing drop of the old
    /// version after the switch is tried again at the next pull.
    pub fn pull(&mut self) -> Result<usize, SystemError> {
        self.drop_retired()?;
        let serving_read = self.serving.pull()?;
        let Some(building) = &mut self.building else {
            return Ok(serving_read);
        };
        let building_read = building.pull()?;
        let read = serving_read + building_read;
        let caught_up = building.position()? >= self.serving.position()?
            || (serving_read == 0 && building_read == 0);
        if self.serving.pause.is_paused() || !caught_up {
            return Ok(read);
        }
        (self.switch)(building.projection()).map_err(|source| SystemError::Projection {
            projection: building.projection().name().to_owned(),
            position: 0,
            source,
        })?;
        let version = building.projection().version();
        if let Some(next) = self.building.take() {
            let old = std::mem::replace(&mut self.serving, next);
            tracing::info!(
                projection = old.projection().name(),
                from = old.projection().version(),
                to = version,
                "switched to the rebuilt version"
            );
            self.retired = Some(old);
            self.drop_retired()?;
        }
        // Caught up is not finished: the caller reads 0 only once both are.
        Ok(read.max(1))
    }

    /// Pulls until both versions are caught up (switching on the way); returns the events
    /// read.
    ///
    /// # Errors
    /// As [`SideBySide::pull`].
    pub fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        let mut total = 0u64;
        loop {
            match self.pull()? {
                0 => return Ok(total),
                read => total += read as u64,
            }
        }
    }
}

impl<P: VersionedProjection> Follower for SideBySide<P> {
    fn name(&self) -> &str {
        self.serving.projection().name()
    }

    fn position(&self) -> Result<u64, SystemError> {
        self.serving.position()
    }

    fn pull(&mut self) -> Result<usize, SystemError> {
        SideBySide::pull(self)
    }

    fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        SideBySide::run_until_caught_up(self)
    }
}
