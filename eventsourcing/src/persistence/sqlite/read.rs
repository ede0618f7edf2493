//! Reads: a stream's events (visited straight from the rows), one event by id, pages of the
//! notification log and the highest positions.

use std::ops::ControlFlow;

use rusqlite::{params, Connection};
use uuid::Uuid;

use super::error::from_sqlite;
use super::rows::{clamp_i64, decode_event, decode_event_ref, limit_i64};
use super::SqliteRecorder;
use crate::persistence::{
    EventQuery, NotificationQuery, PersistenceError, StoredEvent, StoredEventRef,
};

impl SqliteRecorder {
    pub(super) fn query_events<P: rusqlite::Params>(
        conn: &Connection,
        sql: &str,
        params: P,
    ) -> Result<Vec<StoredEvent>, PersistenceError> {
        let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
        let mut rows = stmt.query(params).map_err(from_sqlite)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(from_sqlite)? {
            events.push(decode_event(row)?);
        }
        Ok(events)
    }

    pub(super) fn load_stream(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let from = query.from_version.unwrap_or(0);
        if i64::try_from(from).is_err() {
            return Ok(());
        }
        let (from, to) = (
            clamp_i64(from),
            query.to_version.map_or(i64::MAX, clamp_i64),
        );
        let limit = query.limit.map_or(-1, limit_i64);
        let sql = if query.descending {
            &self.sql.select_events_desc
        } else {
            &self.sql.select_events_asc
        };
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
            let mut rows = stmt
                .query(params![stream_id, from, to, limit])
                .map_err(from_sqlite)?;
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                if visit(decode_event_ref(row)?).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    pub(super) fn load_event_by_id(
        &self,
        event_id: Uuid,
    ) -> Result<Option<StoredEvent>, PersistenceError> {
        self.read(|conn| {
            let mut events = Self::query_events(
                conn,
                &self.sql.event_by_id,
                [event_id.as_bytes().as_slice()],
            )?;
            Ok(events.pop())
        })
    }

    pub(super) fn load_notifications(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let Ok(from) = i64::try_from(query.from_position) else {
            return Ok(());
        };
        let to = query.to_position.map_or(i64::MAX, clamp_i64);
        let start = into.len();
        let result = if query.topics.is_empty() {
            // The statement has no `LIMIT` (see `Statements::notifications`): take `limit`
            // rows and stop.
            self.read(|conn| {
                let mut stmt = conn
                    .prepare_cached(&self.sql.notifications)
                    .map_err(from_sqlite)?;
                let mut rows = stmt.query(params![from, to]).map_err(from_sqlite)?;
                while into.len() - start < query.limit {
                    let Some(row) = rows.next().map_err(from_sqlite)? else {
                        break;
                    };
                    into.push(decode_event(row)?);
                }
                Ok(())
            })
        } else {
            let limit = limit_i64(query.limit);
            let topics = serde_json::to_string(&query.topics)
                .map_err(|e| PersistenceError::Config(format!("topic filter: {e}")))?;
            self.read(|conn| {
                into.extend(Self::query_events(
                    conn,
                    &self.sql.notifications_by_topic,
                    params![from, to, limit, topics],
                )?);
                Ok(())
            })
        };
        if result.is_err() {
            into.truncate(start);
        }
        result
    }

    pub(super) fn load_max_position(&self) -> Result<u64, PersistenceError> {
        self.read(|conn| {
            let max: i64 = conn
                .prepare_cached(&self.sql.max_position)
                .and_then(|mut s| s.query_row([], |row| row.get(0)))
                .map_err(from_sqlite)?;
            u64::try_from(max).map_err(|_| PersistenceError::Corrupt {
                detail: format!("events row at negative position {max}"),
            })
        })
    }

    pub(super) fn load_max_tracking_position(
        &self,
        upstream: &str,
    ) -> Result<Option<u64>, PersistenceError> {
        self.read(|conn| {
            let max: Option<i64> = conn
                .prepare_cached(&self.sql.max_tracking)
                .and_then(|mut s| s.query_row([upstream], |row| row.get(0)))
                .map_err(from_sqlite)?;
            max.map(|p| {
                u64::try_from(p).map_err(|_| PersistenceError::Corrupt {
                    detail: format!(
                        "tracking row of upstream {upstream:?} at negative position {p}"
                    ),
                })
            })
            .transpose()
        })
    }
}
