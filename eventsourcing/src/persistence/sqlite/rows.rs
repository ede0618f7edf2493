//! Converting between stored events or snapshots and SQLite rows, with checked integer
//! conversions: a row that breaks the store's invariants is a [`PersistenceError::Corrupt`]
//! naming the row, never a panic.

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use rusqlite::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::corrupt_row;
use crate::domain::{Metadata, Timestamp};
use crate::persistence::{PersistenceError, StoredEvent, StoredEventRef, StoredSnapshot};

/// The `metadata` column: what [`Metadata`] holds besides the event id and timestamp.
#[derive(Serialize)]
struct ExtrasOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "no_user_values")]
    user: &'a BTreeMap<String, String>,
}

fn no_user_values(user: &&BTreeMap<String, String>) -> bool {
    user.is_empty()
}

#[derive(Deserialize)]
struct ExtrasIn {
    #[serde(default)]
    causation_id: Option<Uuid>,
    #[serde(default)]
    correlation_id: Option<Uuid>,
    #[serde(default)]
    user: BTreeMap<String, String>,
}

/// An event's values as bound to the insert and update statements.
#[derive(Debug, Clone)]
pub(super) struct EncodedEvent {
    pub(super) version: i64,
    pub(super) event_id: [u8; 16],
    pub(super) schema_version: i64,
    pub(super) timestamp: i64,
    pub(super) metadata: Option<String>,
}

/// Encodes the parts of an event that need converting, before any I/O.
pub(super) fn encode_event(event: &StoredEvent) -> Result<EncodedEvent, PersistenceError> {
    let version = i64::try_from(event.version).map_err(|_| PersistenceError::InvalidBatch {
        stream_id: event.stream_id.clone(),
        reason: format!(
            "version {} does not fit a 64-bit signed integer",
            event.version
        ),
    })?;
    let metadata = if event.metadata.has_extras() {
        let extras = ExtrasOut {
            causation_id: event.metadata.causation_id,
            correlation_id: event.metadata.correlation_id,
            user: &event.metadata.user,
        };
        Some(
            serde_json::to_string(&extras).map_err(|e| PersistenceError::InvalidBatch {
                stream_id: event.stream_id.clone(),
                reason: format!("metadata cannot be encoded: {e}"),
            })?,
        )
    } else {
        None
    };
    Ok(EncodedEvent {
        version,
        event_id: event.metadata.event_id.into_bytes(),
        schema_version: i64::from(event.schema_version),
        timestamp: event.metadata.timestamp.as_micros(),
        metadata,
    })
}

/// Reads an event row selected with the `{events}` column list.
pub(super) fn decode_event(row: &Row<'_>) -> Result<StoredEvent, PersistenceError> {
    decode_event_ref(row).map(StoredEventRef::into_owned)
}

/// Reads an event row selected with the `{events}` column list, borrowing its text and blob
/// columns from the row.
///
/// This runs once per event read (stream loads, notification pages), so it builds the error
/// context (which names the row's position) only when a column is bad.
pub(super) fn decode_event_ref<'r>(
    row: &'r Row<'_>,
) -> Result<StoredEventRef<'r>, PersistenceError> {
    const TABLE: &str = "events";
    let position: i64 = row
        .get(0)
        .map_err(|e| corrupt_row(TABLE, "with an unreadable position", e))?;
    // Once the stream and version are read, errors name them too; the context string is
    // built only when a column is bad.
    let context: std::cell::Cell<Option<(&'r str, u64)>> = std::cell::Cell::new(None);
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        let at = match context.get() {
            Some((stream, version)) => format!(
                "at position {position} (stream `{}`, version {version})",
                stream.escape_debug()
            ),
            None => format!("at position {position}"),
        };
        corrupt_row(TABLE, &at, format!("{what}: {e}"))
    };
    let value = |index: usize, what: &str| -> Result<ValueRef<'r>, PersistenceError> {
        row.get_ref(index).map_err(|e| corrupt(what, &e))
    };
    let text = |index: usize, what: &str| -> Result<&'r str, PersistenceError> {
        value(index, what)?.as_str().map_err(|e| corrupt(what, &e))
    };
    let integer = |index: usize, what: &str| -> Result<i64, PersistenceError> {
        value(index, what)?.as_i64().map_err(|e| corrupt(what, &e))
    };
    let position = u64::try_from(position).map_err(|e| corrupt("position is negative", &e))?;
    let stream_id = text(1, "bad stream_id")?;
    let version = integer(2, "bad version")?;
    let version = u64::try_from(version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| corrupt("bad version", &version))?;
    context.set(Some((stream_id, version)));
    let event_id = value(3, "bad event_id")?
        .as_blob()
        .map_err(|e| corrupt("bad event_id", &e))
        .and_then(|bytes| Uuid::from_slice(bytes).map_err(|e| corrupt("bad event_id", &e)))?;
    let topic = text(4, "bad topic")?;
    let schema_version = integer(5, "bad schema_version")?;
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| corrupt("bad schema_version", &schema_version))?;
    let timestamp = integer(6, "bad timestamp")?;
    let payload = value(7, "bad payload")?
        .as_blob()
        .map_err(|e| corrupt("bad payload", &e))?;
    let extras = match value(8, "bad metadata")? {
        ValueRef::Null => ExtrasIn {
            causation_id: None,
            correlation_id: None,
            user: BTreeMap::new(),
        },
        other => {
            let json = other.as_str().map_err(|e| corrupt("bad metadata", &e))?;
            serde_json::from_str::<ExtrasIn>(json).map_err(|e| corrupt("bad metadata JSON", &e))?
        }
    };
    Ok(StoredEventRef {
        stream_id,
        version,
        topic,
        schema_version,
        payload,
        metadata: Metadata {
            event_id,
            timestamp: Timestamp::from_micros(timestamp),
            causation_id: extras.causation_id,
            correlation_id: extras.correlation_id,
            user: extras.user,
        },
        position: Some(position),
    })
}

/// Reads a snapshot row selected with the `{snapshots}` column list.
pub(super) fn decode_snapshot(row: &Row<'_>) -> Result<StoredSnapshot, PersistenceError> {
    const TABLE: &str = "snapshots";
    let stream_id: String = row
        .get(0)
        .map_err(|e| corrupt_row(TABLE, "with an unreadable stream_id", e))?;
    let version: i64 = row
        .get(1)
        .map_err(|e| corrupt_row(TABLE, &format!("of stream {stream_id:?}"), e))?;
    let at = format!("of stream {stream_id:?} at version {version}");
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| corrupt_row(TABLE, &at, format!("{what}: {e}"));
    let version_u = u64::try_from(version).map_err(|e| corrupt("negative version", &e))?;
    let topic: String = row.get(2).map_err(|e| corrupt("bad topic", &e))?;
    let schema_version: i64 = row.get(3).map_err(|e| corrupt("bad schema_version", &e))?;
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| corrupt("bad schema_version", &schema_version))?;
    let state: Vec<u8> = row.get(4).map_err(|e| corrupt("bad state", &e))?;
    let created_on: i64 = row.get(5).map_err(|e| corrupt("bad created_on", &e))?;
    let modified_on: i64 = row.get(6).map_err(|e| corrupt("bad modified_on", &e))?;
    Ok(StoredSnapshot {
        stream_id,
        version: version_u,
        topic,
        schema_version,
        state,
        created_on: Timestamp::from_micros(created_on),
        modified_on: Timestamp::from_micros(modified_on),
    })
}

/// A `u64` bound (version, position) clamped into SQLite's signed range: values above
/// `i64::MAX` cannot be stored, so clamping never changes a query's answer.
pub(super) fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `usize` limit as SQLite's `LIMIT` wants it.
pub(super) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A row count (never negative) as `u64`.
pub(super) fn count_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}
