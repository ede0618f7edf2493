//! Snapshots: one row per stream and version, beside the events.

use rusqlite::params;

use super::error::from_sqlite;
use super::rows::{clamp_i64, count_u64, decode_snapshot};
use super::SqliteRecorder;
use crate::persistence::{PersistenceError, SnapshotRecorder, StoredSnapshot};

impl SnapshotRecorder for SqliteRecorder {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        let version = i64::try_from(snapshot.version).map_err(|_| {
            PersistenceError::Config(format!(
                "snapshot version {} of stream `{}` does not fit a 64-bit signed integer",
                snapshot.version, snapshot.stream_id
            ))
        })?;
        self.write(|tx| {
            tx.prepare_cached(&self.sql.put_snapshot)
                .and_then(|mut s| {
                    s.execute(params![
                        snapshot.stream_id,
                        version,
                        snapshot.topic,
                        i64::from(snapshot.schema_version),
                        snapshot.state,
                        snapshot.created_on.as_micros(),
                        snapshot.modified_on.as_micros(),
                    ])
                })
                .map_err(from_sqlite)?;
            Ok(())
        })
    }

    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let at_most = at_most_version.map_or(i64::MAX, clamp_i64);
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&self.sql.latest_snapshot)
                .map_err(from_sqlite)?;
            let mut rows = stmt
                .query(params![stream_id, at_most])
                .map_err(from_sqlite)?;
            rows.next()
                .map_err(from_sqlite)?
                .map(decode_snapshot)
                .transpose()
        })
    }

    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.write(|tx| {
            tx.prepare_cached(&self.sql.delete_snapshots)
                .and_then(|mut s| s.execute([stream_id]))
                .map(count_u64)
                .map_err(from_sqlite)
        })
    }
}
