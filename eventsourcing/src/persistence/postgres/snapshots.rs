//! Snapshots: one row per (stream, version), replaced when put again.

use super::error::classify;
use super::rows::{decode_snapshot, to_bigint, to_int};
use super::PostgresRecorder;
use crate::persistence::{PersistenceError, SnapshotRecorder, StoredSnapshot};

impl SnapshotRecorder for PostgresRecorder {
    fn put_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), PersistenceError> {
        let version = to_bigint(snapshot.version, "snapshot version")?;
        let schema_version = to_int(snapshot.schema_version, "snapshot schema version")?;
        self.conn()?
            .prepared_execute(
                &self.sql.put_snapshot,
                &[
                    &snapshot.stream_id,
                    &version,
                    &snapshot.topic,
                    &schema_version,
                    &snapshot.state,
                    &snapshot.created_on.as_micros(),
                    &snapshot.modified_on.as_micros(),
                ],
            )
            .map_err(classify)?;
        Ok(())
    }

    fn latest_snapshot(
        &self,
        stream_id: &str,
        at_most_version: Option<u64>,
    ) -> Result<Option<StoredSnapshot>, PersistenceError> {
        let at_most = at_most_version.map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
        self.conn()?
            .prepared_opt(&self.sql.latest_snapshot, &[&stream_id, &at_most])
            .map_err(classify)?
            .as_ref()
            .map(decode_snapshot)
            .transpose()
    }

    fn delete_snapshots(&self, stream_id: &str) -> Result<u64, PersistenceError> {
        self.conn()?
            .prepared_execute(&self.sql.delete_snapshots, &[&stream_id])
            .map_err(classify)
    }
}
