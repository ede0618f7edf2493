//! Spans around the framework's operations (`tracing`), timed only when someone listens.
//!
//! Every span declares `duration_us` and `error` as empty fields; [`Timed::finish`] fills
//! them. Without a subscriber (or with the span's level filtered out) the span is disabled,
//! and nothing is measured or formatted: one atomic load per span.

use std::fmt::Display;
use std::time::Instant;

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

/// A span and the moment it started, if it is enabled.
pub(crate) struct Timed {
    span: Span,
    start: Option<Instant>,
}

impl Timed {
    /// Starts timing `span` (when it is enabled).
    pub(crate) fn new(span: Span) -> Self {
        let start = (!span.is_disabled()).then(Instant::now);
        Self { span, start }
    }

    /// Whether anyone listens to this span: compute costly fields only then.
    pub(crate) fn enabled(&self) -> bool {
        self.start.is_some()
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

    /// Records the duration, and the error if `result` is one.
    pub(crate) fn finish<T, E: Display>(&self, result: &Result<T, E>) {
        if let Some(start) = self.start {
            let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.span.record("duration_us", micros);
            if let Err(error) = result {
                self.span.record("error", tracing::field::display(error));
            }
        }
    }
}
