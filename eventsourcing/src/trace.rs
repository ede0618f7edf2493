//! Spans around the framework's operations (`tracing`), timed only when someone listens.
//!
//! Every span declares `duration_us` and `error` as empty fields; [`Timed::finish`] fills
//! them. Without a subscriber (or with the span's level filtered out) the span is disabled,
//! and nothing is measured or formatted: one atomic load per span.

use std::fmt::Display;
use std::time::{Duration, Instant};

use tracing::Span;

/// The `pull` span of a follower's page: its name, the events read, the duration.
pub(crate) fn pull<R>(follower: &str, pull: impl FnOnce() -> Result<usize, R>) -> Result<usize, R>
where
    R: Display,
{
    let span = Timed::new(tracing::debug_span!(
        "pull",
        follower,
        events = tracing::field::Empty,
        duration_us = tracing::field::Empty,
        error = tracing::field::Empty,
    ));
    let result = span.in_scope(pull);
    if let Ok(events) = &result {
        span.record("events", *events);
    }
    span.finish(&result);
    result
}

/// Metrics through the `metrics` facade (feature `metrics`); without the feature every
/// function here is empty and inlined away.
pub(crate) mod metrics {
    #[cfg(feature = "metrics")]
    fn count(n: usize) -> u64 {
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// A save committed `events` events.
    #[inline]
    pub(crate) fn saved(events: usize) {
        #[cfg(feature = "metrics")]
        {
            ::metrics::counter!("eventsourcing_saves_total").increment(1);
            ::metrics::counter!("eventsourcing_events_saved_total").increment(count(events));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = events;
    }

    /// A save conflicted.
    #[inline]
    pub(crate) fn conflict() {
        #[cfg(feature = "metrics")]
        ::metrics::counter!("eventsourcing_conflicts_total").increment(1);
    }

    /// An aggregate of `entity` was loaded in `duration`, from a snapshot or not.
    #[inline]
    pub(crate) fn loaded(entity: &'static str, duration: Option<super::Duration>, snapshot: bool) {
        #[cfg(feature = "metrics")]
        {
            if let Some(duration) = duration {
                ::metrics::histogram!("eventsourcing_load_duration_seconds", "entity" => entity)
                    .record(duration.as_secs_f64());
            }
            if snapshot {
                ::metrics::counter!("eventsourcing_snapshot_hits_total", "entity" => entity)
                    .increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (entity, duration, snapshot);
    }

    /// A follower parked an upstream event.
    #[inline]
    pub(crate) fn parked(follower: &str) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!("eventsourcing_parked_total", "follower" => follower.to_owned())
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = follower;
    }

    /// A follower is `lag` positions behind its upstream's end after a pull.
    #[inline]
    pub(crate) fn follower_lag(follower: &str, lag: impl FnOnce() -> Option<u64>) {
        #[cfg(feature = "metrics")]
        if let Some(lag) = lag() {
            #[allow(clippy::cast_precision_loss)]
            ::metrics::gauge!("eventsourcing_follower_lag", "follower" => follower.to_owned())
                .set(lag as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (follower, lag);
    }
}

/// A span and the moment it started, if it is enabled (or metrics are on).
pub(crate) struct Timed {
    span: Span,
    enabled: bool,
    start: Option<Instant>,
}

impl Timed {
    /// Starts timing `span` (when it is enabled, or when the `metrics` feature needs the
    /// duration).
    pub(crate) fn new(span: Span) -> Self {
        let enabled = !span.is_disabled();
        let start = (enabled || cfg!(feature = "metrics")).then(Instant::now);
        Self {
            span,
            enabled,
            start,
        }
    }

    /// Whether anyone listens to this span: compute costly fields only then.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Runs `f` inside the span, so that nested spans and events are its children.
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.enabled() {
            self.span.in_scope(f)
        } else {
            f()
        }
    }

    /// The span, e.g. as the parent of an event recorded after it closed.
    pub(crate) fn span_ref(&self) -> &Span {
        &self.span
    }

    /// Records a field declared by the span.
    pub(crate) fn record(&self, field: &str, value: impl tracing::Value) {
        if self.enabled() {
            self.span.record(field, value);
        }
    }

    /// Records the duration, and the error if `result` is one; returns the duration when it
    /// was measured.
    pub(crate) fn finish<T, E: Display>(&self, result: &Result<T, E>) -> Option<Duration> {
        let elapsed = self.start.map(|start| start.elapsed());
        if let (true, Some(elapsed)) = (self.enabled, elapsed) {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.span.record("duration_us", micros);
            if let Err(error) = result {
                self.span.record("error", tracing::field::display(error));
            }
        }
        elapsed
    }
}
