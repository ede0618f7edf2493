//! Catch-up projections: read models built from an upstream log, that can be added at any
//! time (they start from position 1) and rebuilt (reset, then replay).

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
        }
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
    pub fn pull(&mut self) -> Result<usize, SystemError> {
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
        self.projection.reset();
        self.position = 0;
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
        }
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

    /// The projection, consuming the projector.
    #[must_use]
    pub fn into_projection(self) -> P {
        self.projection
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
    pub fn pull(&mut self) -> Result<usize, SystemError> {
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
        self.projection
            .reset()
            .map_err(|source| self.error(0, source))?;
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
