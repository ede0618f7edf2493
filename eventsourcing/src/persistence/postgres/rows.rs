//! Values between the recorder and its columns: integers and metadata encoded for the bind
//! parameters, rows decoded back into events and snapshots. A row that breaks the schema's
//! invariants is [`PersistenceError::Corrupt`], naming its position when it has one.

use std::collections::BTreeMap;

use postgres::types::{FromSql, Type};
use postgres::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::BACKEND;
use crate::domain::{Metadata, Timestamp};
use crate::persistence::{PersistenceError, StoredEvent, StoredEventRef, StoredSnapshot};

/// The metadata kept in the `metadata` column: everything but the event id and timestamp,
/// which have their own columns.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Extras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    user: BTreeMap<String, String>,
}

pub(super) fn extras_json(
    metadata: &Metadata,
    stream_id: &str,
) -> Result<Option<String>, PersistenceError> {
    if !metadata.has_extras() {
        return Ok(None);
    }
    let extras = Extras {
        causation_id: metadata.causation_id,
        correlation_id: metadata.correlation_id,
        user: metadata.user.clone(),
    };
    serde_json::to_string(&extras)
        .map(Some)
        .map_err(|e| PersistenceError::InvalidBatch {
            stream_id: stream_id.to_owned(),
            reason: format!("metadata cannot be encoded as JSON: {e}"),
        })
}

/// A u64 (version, position) as a BIGINT.
pub(super) fn to_bigint(value: u64, what: &'static str) -> Result<i64, PersistenceError> {
    i64::try_from(value).map_err(|_| PersistenceError::LimitExceeded {
        what,
        limit: i64::MAX.unsigned_abs(),
        actual: value,
    })
}

pub(super) fn to_int(value: u32, what: &'static str) -> Result<i32, PersistenceError> {
    i32::try_from(value).map_err(|_| PersistenceError::LimitExceeded {
        what,
        limit: i32::MAX.unsigned_abs().into(),
        actual: value.into(),
    })
}

pub(super) fn corrupt(
    position: Option<i64>,
    what: &str,
    detail: impl std::fmt::Display,
) -> PersistenceError {
    PersistenceError::Corrupt {
        detail: match position {
            Some(p) => format!("{BACKEND} event at position {p}: {what}: {detail}"),
            None => format!("{BACKEND} event: {what}: {detail}"),
        },
    }
}

/// A `uuid` column in its binary format: 16 bytes, no text conversion on either side.
pub(super) struct PgUuid(pub(super) Uuid);

impl<'a> FromSql<'a> for PgUuid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 16] = raw
            .try_into()
            .map_err(|_| format!("a UUID has 16 bytes, found {}", raw.len()))?;
        Ok(Self(Uuid::from_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// A `jsonb` (or `json`) column as the JSON text's bytes, borrowed from the row: the binary
/// format of `jsonb` is a version byte (1) followed by the text.
struct JsonText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => Ok(Self(text)),
                Some((version, _)) => Err(format!("unsupported jsonb version {version}").into()),
                None => Err("empty jsonb value".into()),
            }
        } else {
            Ok(Self(raw))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// One event row ([`EVENT_COLUMNS`]) lent as a [`StoredEventRef`]: text and bytes borrowed
/// from the row, metadata decoded only when the column is not NULL. The error context is
/// built only on error.
///
/// `stream_id` is the stream a query selected on, when its rows do not carry it.
///
/// [`EVENT_COLUMNS`]: super::sql::EVENT_COLUMNS
pub(super) fn decode_event_ref<'a>(
    row: &'a Row,
    stream_id: Option<&'a str>,
) -> Result<StoredEventRef<'a>, PersistenceError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| corrupt(row.try_get(0).ok(), what, e);
    let position: i64 = row.try_get(0).map_err(|e| bad("position", &e))?;
    let version: i64 = row.try_get(2).map_err(|e| bad("version", &e))?;
    let event_id: PgUuid = row.try_get(3).map_err(|e| bad("event id", &e))?;
    let schema_version: i32 = row.try_get(5).map_err(|e| bad("schema version", &e))?;
    let timestamp: i64 = row.try_get(6).map_err(|e| bad("timestamp", &e))?;
    let metadata: Option<JsonText<'_>> = row.try_get(8).map_err(|e| bad("metadata", &e))?;
    let extras = match metadata {
        Some(json) => {
            serde_json::from_slice::<Extras>(json.0).map_err(|e| bad("metadata JSON", &e))?
        }
        None => Extras::default(),
    };
    let stream_id = match stream_id {
        Some(stream_id) => stream_id,
        None => row.try_get(1).map_err(|e| bad("stream id", &e))?,
    };
    Ok(StoredEventRef {
        stream_id,
        version: u64::try_from(version).map_err(|e| bad("negative version", &e))?,
        topic: row.try_get(4).map_err(|e| bad("topic", &e))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|e| bad("negative schema version", &e))?,
        payload: row.try_get(7).map_err(|e| bad("payload", &e))?,
        metadata: Metadata {
            event_id: event_id.0,
            timestamp: Timestamp::from_micros(timestamp),
            causation_id: extras.causation_id,
            correlation_id: extras.correlation_id,
            user: extras.user,
        },
        position: Some(u64::try_from(position).map_err(|e| bad("negative position", &e))?),
    })
}

pub(super) fn decode_event(row: &Row) -> Result<StoredEvent, PersistenceError> {
    decode_event_ref(row, None).map(StoredEventRef::into_owned)
}

pub(super) fn decode_snapshot(row: &Row) -> Result<StoredSnapshot, PersistenceError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| PersistenceError::Corrupt {
        detail: format!("{BACKEND} snapshot: {what}: {e}"),
    };
    let version: i64 = row.try_get(1).map_err(|e| bad("version", &e))?;
    let schema_version: i32 = row.try_get(3).map_err(|e| bad("schema version", &e))?;
    Ok(StoredSnapshot {
        stream_id: row.try_get(0).map_err(|e| bad("stream id", &e))?,
        version: u64::try_from(version).map_err(|e| bad("negative version", &e))?,
        topic: row.try_get(2).map_err(|e| bad("topic", &e))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|e| bad("negative schema version", &e))?,
        state: row.try_get(4).map_err(|e| bad("state", &e))?,
        created_on: Timestamp::from_micros(row.try_get(5).map_err(|e| bad("created_on", &e))?),
        modified_on: Timestamp::from_micros(row.try_get(6).map_err(|e| bad("modified_on", &e))?),
    })
}
