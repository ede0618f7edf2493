//! Checks of the append contract that need no storage, shared by every recorder so that
//! each refuses the same input before any I/O.

use super::super::error::PersistenceError;
use super::super::stored_event::{StoredEvent, StreamAppend, Tracking};

/// The longest stream id, topic or tracking upstream name, in bytes (UTF-8), on every backend:
/// 1,024. Longer ones are a [`PersistenceError::LimitExceeded`] before any I/O (PostgreSQL's
/// indexes cannot hold keys of a few kilobytes, and one limit for every backend keeps stores
/// copyable into each other).
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

fn check_identifier(what: &'static str, text: &str) -> Result<(), PersistenceError> {
    if text.len() > MAX_IDENTIFIER_BYTES {
        return Err(PersistenceError::LimitExceeded {
            what,
            limit: MAX_IDENTIFIER_BYTES as u64,
            actual: text.len() as u64,
        });
    }
    Ok(())
}

/// Checks the parts of the append contract that need no storage: non-empty stream ids,
/// contiguous versions starting after the expected version, and text that every backend can
/// store ([`validate_text`]). Recorders call it before any I/O.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`].
pub fn validate_batch(batch: &[StreamAppend]) -> Result<(), PersistenceError> {
    for (index, append) in batch.iter().enumerate() {
        let invalid = |reason: String| PersistenceError::InvalidBatch {
            stream_id: append.stream_id.clone(),
            reason,
        };
        if append.stream_id.is_empty() {
            return Err(invalid("the stream id is empty".into()));
        }
        if append.stream_id.contains('\0') {
            return Err(invalid("the stream id contains a NUL character".into()));
        }
        validate_text(&append.events)?;
        if batch[..index]
            .iter()
            .any(|a| a.stream_id == append.stream_id)
        {
            return Err(invalid("the stream appears twice in one batch".into()));
        }
        for (offset, event) in (1u64..).zip(&append.events) {
            let Some(expected) = append.expected_version.checked_add(offset) else {
                return Err(invalid(format!(
                    "versions after {} run past the largest version",
                    append.expected_version
                )));
            };
            if event.version != expected || event.stream_id != append.stream_id {
                return Err(invalid(format!(
                    "event for stream `{}` has version {}, expected version {expected}",
                    event.stream_id, event.version
                )));
            }
        }
    }
    Ok(())
}

/// Checks an append before any I/O: [`validate_batch`], and [`validate_tracking`] when a
/// tracking record comes with it.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`].
pub fn validate_append(
    batch: &[StreamAppend],
    tracking: Option<&Tracking>,
) -> Result<(), PersistenceError> {
    validate_batch(batch)?;
    tracking.map_or(Ok(()), validate_tracking)
}

/// Checks a tracking record before any I/O: the upstream name must be non-empty and free of
/// NUL characters (which PostgreSQL cannot store), like stream ids.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`] naming the upstream.
pub fn validate_tracking(tracking: &Tracking) -> Result<(), PersistenceError> {
    let invalid = |reason: &str| PersistenceError::InvalidBatch {
        stream_id: String::new(),
        reason: format!(
            "tracking upstream `{}` {reason}",
            tracking.upstream.escape_debug()
        ),
    };
    if tracking.upstream.is_empty() {
        return Err(invalid("is empty"));
    }
    if tracking.upstream.contains('\0') {
        return Err(invalid("contains a NUL character"));
    }
    check_identifier("tracking upstream name length in bytes", &tracking.upstream)?;
    if let Some(lease) = &tracking.lease {
        super::super::lease::validate_lease(&lease.name, &lease.owner)?;
    }
    Ok(())
}

/// The tracking guard of [`AggregateRecorder::append`](super::AggregateRecorder::append), for recorders to call with the highest
/// position tracked for the upstream, read inside the appending transaction.
///
/// # Errors
/// [`PersistenceError::AlreadyTracked`] when that position is at or above
/// `tracking.from_position`.
pub fn check_not_tracked(tracking: &Tracking, max: Option<u64>) -> Result<(), PersistenceError> {
    if max.is_some_and(|max| max >= tracking.from_position) {
        return Err(PersistenceError::AlreadyTracked {
            upstream: tracking.upstream.clone(),
            position: tracking.position,
        });
    }
    Ok(())
}

/// Checks that the text of stored events can be kept by every backend: no NUL character in
/// the stream id, the topic, or the keys and values of the user metadata. (PostgreSQL `TEXT`
/// and `JSONB` cannot hold NUL; the other backends refuse it too, so that data written to one
/// backend can always be copied to another.) Recorders call it before any I/O, on append and
/// on update.
///
/// # Errors
/// [`PersistenceError::InvalidBatch`] naming the stream and the field.
pub fn validate_text(events: &[StoredEvent]) -> Result<(), PersistenceError> {
    for event in events {
        let invalid = |what: &str| PersistenceError::InvalidBatch {
            stream_id: event.stream_id.clone(),
            reason: format!(
                "the {what} of the event at version {} contains a NUL character",
                event.version
            ),
        };
        if event.stream_id.contains('\0') {
            return Err(invalid("stream id"));
        }
        check_identifier("stream id length in bytes", &event.stream_id)?;
        check_identifier("topic length in bytes", &event.topic)?;
        if event.topic.contains('\0') {
            return Err(invalid("topic"));
        }
        if event
            .metadata
            .user
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(invalid("user metadata"));
        }
    }
    Ok(())
}
