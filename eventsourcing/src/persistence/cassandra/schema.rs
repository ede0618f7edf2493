//! The schema file, its version, and the prepared statements run against it.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use super::config::CassandraConfig;
use super::error::{classify, from_prepare, from_rows, BACKEND};
use crate::persistence::PersistenceError;

/// The documented schema, with `{keyspace}` and `{replication}` to fill in.
const SCHEMA_CQL: &str = include_str!("schema.cql");

/// The schema version this code writes and reads, kept in `schema_info`.
pub const SCHEMA_VERSION: i32 = 1;

/// The columns of an event row, in the order `rows::EventRow` reads them.
const EVENT_COLUMNS: &str = "version, head, event_id, topic, schema_version, payload, \
     recorded_at, causation_id, correlation_id, user_metadata";

/// The columns of a snapshot row, in the order `rows::SnapshotRow` reads them.
const SNAPSHOT_COLUMNS: &str =
    "stream_id, version, topic, schema_version, state, created_on, modified_on";

/// Every statement the recorder runs, prepared once at open.
#[derive(Debug)]
pub(super) struct Statements {
    /// One event of a conditional append: sets the partition's head and writes the row, if
    /// the head is still the expected one.
    pub(super) append_event: PreparedStatement,
    /// The head of one bucket, read through Paxos (`SERIAL`): sees every applied append.
    pub(super) head_serial: PreparedStatement,
    /// The head of one bucket, read at the normal consistency.
    pub(super) head: PreparedStatement,
    pub(super) select_asc: PreparedStatement,
    pub(super) select_desc: PreparedStatement,
    /// One event row (stream, bucket, version), through Paxos.
    pub(super) event_at_serial: PreparedStatement,
    pub(super) event_at: PreparedStatement,
    pub(super) event_by_id: PreparedStatement,
    pub(super) count_bucket: PreparedStatement,
    pub(super) delete_bucket: PreparedStatement,
    pub(super) update_event: PreparedStatement,
    pub(super) put_snapshot: PreparedStatement,
    pub(super) latest_snapshot: PreparedStatement,
    pub(super) count_snapshots: PreparedStatement,
    pub(super) delete_snapshots: PreparedStatement,
}

/// Creates the keyspace and tables if missing, checks the schema version and the bucket size,
/// and prepares the statements. Returns the bucket size in force.
pub(super) async fn open(
    session: &Session,
    config: &CassandraConfig,
) -> Result<(Statements, u64), PersistenceError> {
    let ks = &config.keyspace;
    let cql = SCHEMA_CQL
        .replace("{keyspace}", ks)
        .replace("{replication}", &config.replication.cql());
    for statement in statements(&cql) {
        session
            .query_unpaged(statement, ())
            .await
            .map_err(classify)?;
    }
    // The first recorder to open a keyspace fixes the bucket size; the others read it.
    let bucket_size = super::error::signed(config.bucket_size, "bucket size")?;
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.schema_info (id, version, bucket_size) VALUES (1, ?, ?) IF NOT EXISTS"
            ),
            (SCHEMA_VERSION, bucket_size),
        )
        .await
        .map_err(classify)?;
    let (version, stored_bucket_size) = session
        .query_unpaged(
            format!("SELECT version, bucket_size FROM {ks}.schema_info WHERE id = 1"),
            (),
        )
        .await
        .map_err(classify)?
        .into_rows_result()
        .map_err(from_rows)?
        .single_row::<(Option<i32>, Option<i64>)>()
        .map_err(from_rows)?;
    let version = version.unwrap_or_default();
    if version != SCHEMA_VERSION {
        return Err(PersistenceError::SchemaVersion {
            backend: BACKEND,
            found: i64::from(version),
            supported: i64::from(SCHEMA_VERSION),
        });
    }
    let bucket_size = stored_bucket_size
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| PersistenceError::Corrupt {
            detail: format!("{ks}.schema_info has an invalid bucket size {stored_bucket_size:?}"),
        })?;
    Ok((prepare(session, ks, config).await?, bucket_size))
}

/// The statements of the schema file: comment lines dropped, then split at each `;`.
fn statements(cql: &str) -> Vec<String> {
    let text: Vec<&str> = cql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    text.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn prepare(
    session: &Session,
    ks: &str,
    config: &CassandraConfig,
) -> Result<Statements, PersistenceError> {
    let prepare = |cql: String, serial: bool| async move {
        let mut statement = session.prepare(cql).await.map_err(from_prepare)?;
        statement.set_consistency(Consistency::Quorum);
        statement.set_request_timeout(Some(config.request_timeout));
        if serial {
            statement.set_consistency(Consistency::Serial);
        }
        statement.set_serial_consistency(Some(SerialConsistency::Serial));
        Ok::<_, PersistenceError>(statement)
    };
    let e = EVENT_COLUMNS;
    let s = SNAPSHOT_COLUMNS;
    let mut select_asc = prepare(
        format!(
            "SELECT {e} FROM {ks}.events WHERE stream_id = ? AND bucket = ? \
             AND version >= ? AND version <= ? ORDER BY version ASC LIMIT ?"
        ),
        false,
    )
    .await?;
    let mut select_desc = prepare(
        format!(
            "SELECT {e} FROM {ks}.events WHERE stream_id = ? AND bucket = ? \
             AND version >= ? AND version <= ? ORDER BY version DESC LIMIT ?"
        ),
        false,
    )
    .await?;
    // Pages bound the memory of one read, whatever the bucket size (5,000 small events are
    // about 1 MiB); fewer pages are fewer round trips.
    select_asc.set_page_size(5000);
    select_desc.set_page_size(5000);
    Ok(Statements {
        append_event: prepare(
            format!(
                "UPDATE {ks}.events SET head = ?, event_id = ?, topic = ?, schema_version = ?, \
                 payload = ?, recorded_at = ?, causation_id = ?, correlation_id = ?, user_metadata = ? \
                 WHERE stream_id = ? AND bucket = ? AND version = ? IF head = ?"
            ),
            false,
        )
        .await?,
        head_serial: prepare(
            format!("SELECT head FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1"),
            true,
        )
        .await?,
        head: prepare(
            format!("SELECT head FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1"),
            false,
        )
        .await?,
        select_asc,
        select_desc,
        event_at_serial: prepare(
            format!(
                "SELECT {e} FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version = ?"
            ),
            true,
        )
        .await?,
        event_at: prepare(
            format!(
                "SELECT {e} FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version = ?"
            ),
            false,
        )
        .await?,
        event_by_id: prepare(
            format!("SELECT stream_id, bucket, version FROM {ks}.events WHERE event_id = ?"),
            false,
        )
        .await?,
        count_bucket: prepare(
            format!("SELECT COUNT(version) FROM {ks}.events WHERE stream_id = ? AND bucket = ?"),
            false,
        )
        .await?,
        delete_bucket: prepare(
            format!("DELETE FROM {ks}.events WHERE stream_id = ? AND bucket = ?"),
            false,
        )
        .await?,
        update_event: prepare(
            format!(
                "UPDATE {ks}.events SET topic = ?, schema_version = ?, payload = ?, \
                 recorded_at = ?, causation_id = ?, correlation_id = ?, user_metadata = ? \
                 WHERE stream_id = ? AND bucket = ? AND version = ? IF event_id = ?"
            ),
            false,
        )
        .await?,
        put_snapshot: prepare(
            format!("INSERT INTO {ks}.snapshots ({s}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            false,
        )
        .await?,
        latest_snapshot: prepare(
            format!(
                "SELECT {s} FROM {ks}.snapshots WHERE stream_id = ? AND version <= ? LIMIT 1"
            ),
            false,
        )
        .await?,
        count_snapshots: prepare(
            format!("SELECT COUNT(version) FROM {ks}.snapshots WHERE stream_id = ?"),
            false,
        )
        .await?,
        delete_snapshots: prepare(
            format!("DELETE FROM {ks}.snapshots WHERE stream_id = ?"),
            false,
        )
        .await?,
    })
}
