//! [`Inspect`] for SQLite: aggregate queries over the tables, and `PRAGMA integrity_check`.

use std::ops::ControlFlow;

use rusqlite::{params, Connection, Row};

use super::error::{from_sqlite, BACKEND};
use super::rows::limit_i64;
use super::SqliteRecorder;
use crate::domain::Timestamp;
use crate::persistence::inspect::{
    Inspect, SnapshotSummary, StoreStats, StreamSummary, TopicStats, TrackingSummary,
};
use crate::persistence::PersistenceError;

/// Rows of `integrity_check` kept at most.
const INTEGRITY_ROWS: u32 = 100;

fn unsigned(value: i64, what: &str) -> Result<u64, PersistenceError> {
    u64::try_from(value).map_err(|_| PersistenceError::Corrupt {
        detail: format!("SQLite {what} is negative ({value})"),
    })
}

fn column<T: rusqlite::types::FromSql>(row: &Row<'_>, index: usize) -> Result<T, PersistenceError> {
    row.get(index).map_err(from_sqlite)
}

impl SqliteRecorder {
    fn prefixed(&self, sql: &str) -> String {
        sql.replace("{prefix}", &self.config.table_prefix)
    }

    fn count(&self, conn: &Connection, sql: &str) -> Result<u64, PersistenceError> {
        let value: i64 = conn
            .prepare_cached(&self.prefixed(sql))
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(from_sqlite)?;
        unsigned(value, "count")
    }
}

impl Inspect for SqliteRecorder {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn for_each_stream(
        &self,
        prefix: &str,
        limit: Option<usize>,
        visit: &mut dyn FnMut(StreamSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        // Text compares bytewise (BINARY collation), so the streams with a prefix are one
        // range of the (stream_id, version) index, starting at the prefix itself.
        let sql = self.prefixed(
            "SELECT stream_id, max(version), count(*), max(timestamp) FROM {prefix}events \
             WHERE stream_id >= ?1 GROUP BY stream_id ORDER BY stream_id LIMIT ?2",
        );
        let limit = limit.map_or(-1, limit_i64);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let mut rows = stmt.query(params![prefix, limit]).map_err(from_sqlite)?;
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                let stream_id: String = column(row, 0)?;
                if !stream_id.starts_with(prefix) {
                    break;
                }
                let summary = StreamSummary {
                    version: unsigned(column(row, 1)?, "version")?,
                    events: unsigned(column(row, 2)?, "count")?,
                    last_modified: Timestamp::from_micros(column(row, 3)?),
                    stream_id,
                };
                if visit(summary).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn store_stats(&self) -> Result<StoreStats, PersistenceError> {
        self.read(|conn| {
            let mut stats = StoreStats {
                streams: self.count(
                    conn,
                    "SELECT count(*) FROM (SELECT DISTINCT stream_id FROM {prefix}events)",
                )?,
                snapshots: self.count(conn, "SELECT count(*) FROM {prefix}snapshots")?,
                snapshot_bytes: self.count(
                    conn,
                    "SELECT coalesce(sum(length(state)), 0) FROM {prefix}snapshots",
                )?,
                tracking_records: self.count(conn, "SELECT count(*) FROM {prefix}tracking")?,
                topics: Vec::new(),
            };
            let sql = self.prefixed(
                "SELECT topic, count(*), coalesce(sum(length(payload)), 0), min(timestamp), \
                 max(timestamp) FROM {prefix}events GROUP BY topic ORDER BY topic",
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let mut rows = stmt.query([]).map_err(from_sqlite)?;
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                stats.topics.push(TopicStats {
                    topic: column(row, 0)?,
                    events: unsigned(column(row, 1)?, "count")?,
                    payload_bytes: unsigned(column(row, 2)?, "size")?,
                    first: Timestamp::from_micros(column(row, 3)?),
                    last: Timestamp::from_micros(column(row, 4)?),
                });
            }
            Ok(stats)
        })
    }

    fn for_each_snapshot(
        &self,
        visit: &mut dyn FnMut(SnapshotSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let sql = self.prefixed(
            "SELECT stream_id, version, topic, length(state) FROM {prefix}snapshots \
             ORDER BY stream_id, version",
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let mut rows = stmt.query([]).map_err(from_sqlite)?;
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                let summary = SnapshotSummary {
                    stream_id: column(row, 0)?,
                    version: unsigned(column(row, 1)?, "snapshot version")?,
                    topic: column(row, 2)?,
                    bytes: unsigned(column(row, 3)?, "size")?,
                };
                if visit(summary).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn tracking_summaries(&self) -> Result<Vec<TrackingSummary>, PersistenceError> {
        let sql = self.prefixed(
            "SELECT upstream, max(position), count(*) FROM {prefix}tracking \
             GROUP BY upstream ORDER BY upstream",
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(from_sqlite)?;
            let mut rows = stmt.query([]).map_err(from_sqlite)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                out.push(TrackingSummary {
                    upstream: column(row, 0)?,
                    max_position: unsigned(column(row, 1)?, "tracking position")?,
                    records: unsigned(column(row, 2)?, "count")?,
                });
            }
            Ok(out)
        })
    }

    fn integrity_check(&self) -> Result<Vec<String>, PersistenceError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!("PRAGMA integrity_check({INTEGRITY_ROWS})"))
                .map_err(from_sqlite)?;
            let mut rows = stmt.query([]).map_err(from_sqlite)?;
            let mut problems = Vec::new();
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                let line: String = column(row, 0)?;
                if line != "ok" {
                    problems.push(line);
                }
            }
            Ok(problems)
        })
    }
}
