//! Rows as the driver returns them, and their checked conversion into stored events.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::error::unsigned;
use crate::domain::{Metadata, Timestamp};
use crate::persistence::{PersistenceError, StoredEventRef, StoredSnapshot};

/// The columns of `schema::EVENT_COLUMNS`, borrowed from the response frame. Every column is
/// optional as far as the driver knows (a partition holding only its static `head` yields one
/// row of nulls); [`event_ref`] checks them.
pub(super) type EventRow<'a> = (
    Option<i64>,
    Option<i64>,
    Option<Uuid>,
    Option<&'a str>,
    Option<i32>,
    Option<&'a [u8]>,
    Option<i64>,
    Option<Uuid>,
    Option<Uuid>,
    Option<BTreeMap<String, String>>,
);

/// An event row as the stored event it holds, or `None` for a static-only row (a bucket with
/// a head and no events).
pub(super) fn event_ref<'a>(
    stream_id: &'a str,
    row: EventRow<'a>,
) -> Result<Option<StoredEventRef<'a>>, PersistenceError> {
    let (
        version,
        _head,
        event_id,
        topic,
        schema_version,
        payload,
        recorded_at,
        causation,
        correlation,
        user,
    ) = row;
    let Some(version) = version else {
        return Ok(None);
    };
    let version = unsigned(version, "version", stream_id)?;
    let corrupt = |what: &str| PersistenceError::Corrupt {
        detail: format!(
            "Cassandra event at version {version} of stream `{}` has no {what}",
            stream_id.escape_debug()
        ),
    };
    let schema_version = schema_version.ok_or_else(|| corrupt("schema version"))?;
    let schema_version = u32::try_from(schema_version).map_err(|_| PersistenceError::Corrupt {
        detail: format!(
            "Cassandra event at version {version} of stream `{}` has schema version {schema_version}",
            stream_id.escape_debug()
        ),
    })?;
    Ok(Some(StoredEventRef {
        stream_id,
        version,
        topic: topic.ok_or_else(|| corrupt("topic"))?,
        schema_version,
        // Cassandra reads an empty blob back as null.
        payload: payload.unwrap_or_default(),
        metadata: Metadata {
            event_id: event_id.ok_or_else(|| corrupt("event id"))?,
            timestamp: Timestamp::from_micros(recorded_at.ok_or_else(|| corrupt("timestamp"))?),
            causation_id: causation,
            correlation_id: correlation,
            user: user.unwrap_or_default(),
        },
        position: None,
    }))
}

/// The columns of `schema::SNAPSHOT_COLUMNS`.
pub(super) type SnapshotRow = (
    String,
    i64,
    Option<String>,
    Option<i32>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
);

pub(super) fn snapshot(row: SnapshotRow) -> Result<StoredSnapshot, PersistenceError> {
    let (stream_id, version, topic, schema_version, state, created_on, modified_on) = row;
    let version = unsigned(version, "snapshot version", &stream_id)?;
    let corrupt = |what: &str| PersistenceError::Corrupt {
        detail: format!(
            "Cassandra snapshot at version {version} of stream `{}` has no valid {what}",
            stream_id.escape_debug()
        ),
    };
    Ok(StoredSnapshot {
        version,
        topic: topic.ok_or_else(|| corrupt("topic"))?,
        schema_version: schema_version
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| corrupt("schema version"))?,
        state: state.unwrap_or_default(),
        created_on: Timestamp::from_micros(created_on.ok_or_else(|| corrupt("creation time"))?),
        modified_on: Timestamp::from_micros(
            modified_on.ok_or_else(|| corrupt("modification time"))?,
        ),
        stream_id,
    })
}
