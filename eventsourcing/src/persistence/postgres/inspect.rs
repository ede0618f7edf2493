//! [`Inspect`] for PostgreSQL: aggregate queries over the tables.
//!
//! These statements read the tables directly, not through the readable horizon of the
//! transaction-id ordering: they count what is committed, which is what an operator asks.

use std::ops::ControlFlow;

use postgres::Row;

use super::error::{classify, BACKEND};
use super::PostgresRecorder;
use crate::domain::Timestamp;
use crate::persistence::inspect::{
    Inspect, SnapshotSummary, StoreStats, StreamSummary, TopicStats, TrackingSummary,
};
use crate::persistence::PersistenceError;

fn unsigned(row: &Row, index: usize, what: &str) -> Result<u64, PersistenceError> {
    let value: i64 = row.try_get(index).map_err(classify)?;
    u64::try_from(value).map_err(|_| PersistenceError::Corrupt {
        detail: format!("PostgreSQL {what} is negative ({value})"),
    })
}

impl PostgresRecorder {
    fn inspect_sql(&self, sql: &str) -> String {
        sql.replace("{events}", &self.names.qualified(&self.names.events))
            .replace("{snapshots}", &self.names.qualified(&self.names.snapshots))
            .replace("{tracking}", &self.names.qualified(&self.names.tracking))
    }
}

impl Inspect for PostgresRecorder {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn for_each_stream(
        &self,
        prefix: &str,
        limit: Option<usize>,
        visit: &mut dyn FnMut(StreamSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        // Bytewise order (COLLATE "C"), as on the other backends; `left` counts characters.
        let sql = self.inspect_sql(
            "SELECT stream_id, max(version), count(*), max(\"timestamp\") FROM {events} \
             WHERE left(stream_id, $2) = $1 GROUP BY stream_id \
             ORDER BY stream_id COLLATE \"C\" LIMIT $3",
        );
        let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut conn = self.conn()?;
        let rows = conn
            .client
            .query(&sql, &[&prefix, &chars, &limit])
            .map_err(classify)?;
        for row in rows {
            let summary = StreamSummary {
                stream_id: row.try_get(0).map_err(classify)?,
                version: unsigned(&row, 1, "version")?,
                events: unsigned(&row, 2, "count")?,
                last_modified: Timestamp::from_micros(row.try_get(3).map_err(classify)?),
            };
            if visit(summary).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn store_stats(&self) -> Result<StoreStats, PersistenceError> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction().map_err(classify)?;
        tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(classify)?;
        let counts = tx
            .query_one(
                &self.inspect_sql(
                    "SELECT (SELECT count(DISTINCT stream_id) FROM {events}), \
                     (SELECT count(*) FROM {snapshots}), \
                     (SELECT coalesce(sum(octet_length(state)), 0)::bigint FROM {snapshots}), \
                     (SELECT count(*) FROM {tracking})",
                ),
                &[],
            )
            .map_err(classify)?;
        let mut stats = StoreStats {
            streams: unsigned(&counts, 0, "count")?,
            snapshots: unsigned(&counts, 1, "count")?,
            snapshot_bytes: unsigned(&counts, 2, "size")?,
            tracking_records: unsigned(&counts, 3, "count")?,
            topics: Vec::new(),
        };
        let rows = tx
            .query(
                &self.inspect_sql(
                    "SELECT topic, count(*), coalesce(sum(octet_length(payload)), 0)::bigint, \
                     min(\"timestamp\"), max(\"timestamp\") FROM {events} \
                     GROUP BY topic ORDER BY topic COLLATE \"C\"",
                ),
                &[],
            )
            .map_err(classify)?;
        for row in rows {
            stats.topics.push(TopicStats {
                topic: row.try_get(0).map_err(classify)?,
                events: unsigned(&row, 1, "count")?,
                payload_bytes: unsigned(&row, 2, "size")?,
                first: Timestamp::from_micros(row.try_get(3).map_err(classify)?),
                last: Timestamp::from_micros(row.try_get(4).map_err(classify)?),
            });
        }
        tx.commit().map_err(classify)?;
        Ok(stats)
    }

    fn for_each_snapshot(
        &self,
        visit: &mut dyn FnMut(SnapshotSummary) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let sql = self.inspect_sql(
            "SELECT stream_id, version, topic, octet_length(state)::bigint FROM {snapshots} \
             ORDER BY stream_id COLLATE \"C\", version",
        );
        let mut conn = self.conn()?;
        let rows = conn.client.query(&sql, &[]).map_err(classify)?;
        for row in rows {
            let summary = SnapshotSummary {
                stream_id: row.try_get(0).map_err(classify)?,
                version: unsigned(&row, 1, "snapshot version")?,
                topic: row.try_get(2).map_err(classify)?,
                bytes: unsigned(&row, 3, "size")?,
            };
            if visit(summary).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn tracking_summaries(&self) -> Result<Vec<TrackingSummary>, PersistenceError> {
        let sql = self.inspect_sql(
            "SELECT upstream, max(position), count(*) FROM {tracking} \
             GROUP BY upstream ORDER BY upstream COLLATE \"C\"",
        );
        let mut conn = self.conn()?;
        let rows = conn.client.query(&sql, &[]).map_err(classify)?;
        rows.iter()
            .map(|row| {
                Ok(TrackingSummary {
                    upstream: row.try_get(0).map_err(classify)?,
                    max_position: unsigned(row, 1, "tracking position")?,
                    records: unsigned(row, 2, "count")?,
                })
            })
            .collect()
    }
}
