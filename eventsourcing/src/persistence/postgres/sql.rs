//! The statements, built once when the recorder opens: table names come from [`Names`] (each
//! validated as an identifier), every value is a bind parameter. The schema itself is
//! `schema.sql`, next to this file.

use super::config::{Names, OrderingMode};

/// The store's position offset (`{meta}` is the qualified metadata table): zero until the
/// store was restored into a cluster whose transaction ids are behind its positions, then
/// what lifts new positions above the restored ones (see [`Sql::ahead`]).
const OFFSET: &str = "(SELECT position_offset FROM {meta})";

/// `2^20` ([`ORDINAL_BITS`](super::ORDINAL_BITS); a unit test keeps the two in step).
/// Positions multiply by it rather than shift: `bigint` multiplication raises "bigint out of
/// range" where a shift would wrap silently, so an append whose positions would overflow
/// fails before it commits.
const SCALE: &str = "1048576";

/// The readable horizon in position units: every transaction with an id below the oldest
/// one still running has finished, so no row below this position can appear any more.
const HORIZON: &str =
    "({offset} + pg_snapshot_xmin(pg_current_snapshot())::text::bigint * {scale})";

/// The position of the `$11 + n - 1`-th event of an append in the transaction-id mode.
const XID_POSITION: &str =
    "{offset} + pg_current_xact_id()::text::bigint * {scale} + ($11::int8 + r.n - 1), ";

/// The statements, built once from the validated names and the ordering mode.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) lock: String,
    /// Whether the stored positions reach what the next transaction would be given (a store
    /// restored into another cluster), and the offset now: `(ahead, offset)`.
    pub(super) ahead: String,
    /// Under `repair_lock`: sets the offset so that every new position is above every stored
    /// one.
    pub(super) repair_lock: String,
    pub(super) repair: String,
    /// Under `repair_lock`: as `repair`, with `$1` counted as a stored position too.
    pub(super) raise: String,
    pub(super) horizon: String,
    pub(super) lag: String,
    pub(super) current_versions: String,
    pub(super) insert: String,
    /// The append of one event to one stream, without tracking: see [`Sql::new`].
    pub(super) append_event: String,
    /// The append of up to a chunk of events to one stream, without tracking.
    pub(super) append_stream: String,
    pub(super) track: String,
    /// Serialises tracked commits of one upstream (transaction-scoped advisory lock).
    pub(super) track_lock: String,
    pub(super) select_asc: String,
    pub(super) select_desc: String,
    pub(super) by_id: String,
    pub(super) delete_events: String,
    pub(super) delete_snapshots: String,
    pub(super) update: String,
    pub(super) notifications: String,
    pub(super) notifications_topics: String,
    pub(super) max_position: String,
    pub(super) max_tracking: String,
    pub(super) put_snapshot: String,
    pub(super) latest_snapshot: String,
    pub(super) acquire_lease: String,
    pub(super) renew_lease: String,
    pub(super) release_lease: String,
    pub(super) list_leases: String,
    pub(super) remove_lease: String,
    /// In a fenced append's transaction: the lease row, share-locked until commit, if held.
    pub(super) lease_held: String,
    /// Creates the leases table in a store created before it existed (under a lock).
    pub(super) create_leases: String,
}

/// Now, by the server's clock, in microseconds since the Unix epoch: leases are judged by one
/// clock for every instance.
/// `statement_timestamp()`: one instant for the whole statement.
const NOW_US: &str = "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";

/// The event columns, in the order [`decode_event_ref`] reads them. The event id and the
/// metadata come in their binary formats (16 bytes; a version byte and JSON text), so the
/// server does no text conversion and the client no UUID parsing.
///
/// [`decode_event_ref`]: super::rows::decode_event_ref
pub(super) const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, topic, \
     schema_version, \"timestamp\", payload, metadata";

impl Sql {
    pub(super) fn new(names: &Names, ordering: OrderingMode) -> Self {
        let events = names.qualified(&names.events);
        let tracking = names.qualified(&names.tracking);
        let snapshots = names.qualified(&names.snapshots);
        let leases = names.qualified(&names.leases);
        let meta = names.qualified(&names.meta);
        let offset = OFFSET.replace("{meta}", &meta);
        let horizon = HORIZON
            .replace("{offset}", &offset)
            .replace("{scale}", SCALE);
        let xid_position = XID_POSITION
            .replace("{offset}", &offset)
            .replace("{scale}", SCALE);
        // The position the next transaction id would be given (no id is assigned for it), in
        // `numeric`: near the end of the position space it does not fit a `bigint`, and the
        // open must still work for readers (appends then fail with a typed overflow).
        let next = format!(
            "({offset}::numeric + pg_snapshot_xmax(pg_current_snapshot())::text::numeric * {SCALE})"
        );
        // Readers see only what is below the horizon, in the transaction-id mode.
        let readable = if ordering == OrderingMode::TransactionId {
            format!(" AND position < {horizon}")
        } else {
            String::new()
        };
        let (position, position_value, overriding) = if ordering.uses_xid() {
            (
                "position, ",
                xid_position.as_str(),
                " OVERRIDING SYSTEM VALUE",
            )
        } else {
            ("", "", "")
        };
        // The insert's check that the store is not ahead of this cluster (first chunk only).
        let (ahead_cte, ahead_guard, ahead_row) = if ordering.uses_xid() {
            (
                format!(
                    "ahead AS (SELECT $11::int8 = 0 AND \
                     COALESCE((SELECT max(position) FROM {events}), 0) >= {next} AS ahead), "
                ),
                " AND NOT (SELECT ahead FROM ahead)",
                " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL WHERE (SELECT ahead FROM ahead)",
            )
        } else {
            (String::new(), "", "")
        };
        // The append of one stream without tracking, the common case, in the cheapest form
        // that keeps the checks: a plain insert, the unique index on (stream_id, version)
        // refusing the stream's next version if it exists already, and one guard where the
        // expected version ($9) is above zero: the stream's highest version must be $9 (one
        // backward probe of the same index, written `ORDER BY .. DESC LIMIT 1` because the
        // generic plan of `max(version)` aggregates every entry of the stream; exact even if
        // a stream had gaps, where "the row at $9 exists" would not be). A new stream ($9 = 0) relies on the unique index alone:
        // a stream exists once it has its version 1. With transaction-id
        // positions, a range probe of the position index (no row found in the normal case,
        // so no heap visit, where `max(position)` visits one) checks that the store is not
        // ahead of this cluster. No row returned means a guard failed, and the recorder asks
        // which; a unique violation is a racing writer, as for `insert`.
        let (one_position, n_position, ahead_probe) = if ordering.uses_xid() {
            let xid = format!("{offset} + pg_current_xact_id()::text::bigint * {SCALE}");
            (
                format!("{xid}, "),
                format!("{xid} + (r.n - 1), "),
                format!(
                    " AND NOT EXISTS (SELECT 1 FROM (SELECT position FROM {events} \
                     WHERE position >= LEAST({next}, 9223372036854775807)::bigint \
                     ORDER BY position LIMIT 1) a)"
                ),
            )
        } else {
            (String::new(), String::new(), String::new())
        };
        let at_expected = format!(
            "($9::int8 = 0 OR (SELECT version FROM {events} WHERE stream_id = $1::text \
             ORDER BY version DESC LIMIT 1) = $9::int8){ahead_probe}"
        );
        let event_columns = "stream_id, version, event_id, topic, schema_version, \"timestamp\", \
                             payload, metadata";
        let append_event = format!(
            "INSERT INTO {events} ({position}{event_columns}){overriding} \
             SELECT {one_position}$1::text, $2::int8, $3::uuid, $4::text, $5::int4, $6::int8, \
             $7::bytea, $8::text::jsonb WHERE {at_expected} RETURNING position"
        );
        let append_stream = format!(
            "INSERT INTO {events} ({position}{event_columns}){overriding} \
             SELECT {n_position}$1::text, r.version, r.event_id, r.topic, r.schema_version, \
             r.ts, r.payload, r.metadata::jsonb \
             FROM UNNEST($2::int8[], $3::uuid[], $4::text[], $5::int4[], $6::int8[], \
             $7::bytea[], $8::text[]) WITH ORDINALITY \
             AS r(version, event_id, topic, schema_version, ts, payload, metadata, n) \
             WHERE {at_expected} ORDER BY r.n RETURNING position"
        );
        // The stream id is the parameter: not sent back with every row.
        let stream_columns = EVENT_COLUMNS.replace("stream_id", "NULL::text");
        let select = |order: &str| {
            format!(
                "SELECT {stream_columns} FROM {events} WHERE stream_id = $1 AND version >= $2 \
                 AND version <= $3 ORDER BY version {order} LIMIT $4"
            )
        };
        Self {
            lock: format!("LOCK TABLE {events} IN EXCLUSIVE MODE"),
            ahead: format!(
                "SELECT COALESCE((SELECT max(position) FROM {events}), 0) >= {next} \
                 AND {next} <= 9223372036854775807, {offset}"
            ),
            // SHARE ROW EXCLUSIVE waits for every running append and holds new ones back
            // until the offset is committed; reads go on.
            repair_lock: format!("LOCK TABLE {events} IN SHARE ROW EXCLUSIVE MODE"),
            repair: format!(
                "UPDATE {meta} SET position_offset = (position_offset + \
                 COALESCE((SELECT max(position) FROM {events}), 0) + 1 - {next})::bigint \
                 WHERE COALESCE((SELECT max(position) FROM {events}), 0) >= {next} \
                 AND {next} <= 9223372036854775807 RETURNING position_offset"
            ),
            raise: format!(
                "UPDATE {meta} SET position_offset = (position_offset + \
                 GREATEST(COALESCE((SELECT max(position) FROM {events}), 0), $1::int8) + 1 - {next})::bigint \
                 WHERE GREATEST(COALESCE((SELECT max(position) FROM {events}), 0), $1::int8) >= {next} \
                 AND {next} <= 9223372036854775807 RETURNING position_offset"
            ),
            horizon: format!("SELECT {horizon}"),
            lag: format!(
                "SELECT h.horizon, \
                 COALESCE((SELECT max(position) FROM {events} WHERE true{readable}), 0), \
                 COALESCE((SELECT max(position) FROM {events}), 0), \
                 a.pid, COALESCE(a.datname::text, p.database::text), a.application_name, \
                 COALESCE(a.state, CASE WHEN p.gid IS NOT NULL THEN 'prepared' END), \
                 EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(a.xact_start, p.prepared))::float8, \
                 p.gid \
                 FROM (SELECT {horizon} AS horizon, \
                 (pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text AS xid) h \
                 LEFT JOIN LATERAL (SELECT * FROM pg_stat_activity s \
                 WHERE s.backend_xid::text = h.xid AND s.pid <> pg_backend_pid() LIMIT 1) a ON true \
                 LEFT JOIN pg_prepared_xacts p ON p.transaction::text = h.xid"
            ),
            current_versions: format!(
                "SELECT s.stream_id, COALESCE((SELECT e.version FROM {events} e \
                 WHERE e.stream_id = s.stream_id ORDER BY e.version DESC LIMIT 1), 0) \
                 FROM UNNEST($1::text[]) AS s(stream_id)"
            ),
            // The version check and the insert in one statement (one round trip; in
            // autocommit, the whole append): `expected` computes the current version of every
            // stream of $1/$2 in the statement's snapshot, the insert writes only when all
            // match, and the result is either the inserted rows' positions or the streams that
            // do not match (stream, expected, actual, ordinal in the batch). Event ids go
            // binary (`uuid[]`).
            // With transaction-id positions, the first chunk also checks that the store is not
            // ahead of this cluster (`ahead`, as at open: a store that became a copy of
            // another cluster's while this recorder had it open, such as a promoted
            // logical-replication subscriber): then it inserts nothing and returns one row
            // of NULLs, and the recorder repairs the offset and retries.
            insert: format!(
                "WITH {ahead_cte}expected AS (SELECT c.stream_id, c.expected, c.n, \
                 COALESCE((SELECT e.version FROM {events} e \
                 WHERE e.stream_id = c.stream_id ORDER BY e.version DESC LIMIT 1), 0) AS actual \
                 FROM UNNEST($1::text[], $2::int8[]) WITH ORDINALITY AS c(stream_id, expected, n)), \
                 inserted AS (INSERT INTO {events} ({position}stream_id, version, event_id, topic, \
                 schema_version, \"timestamp\", payload, metadata){overriding} \
                 SELECT {position_value}r.stream_id, r.version, r.event_id, r.topic, \
                 r.schema_version, r.ts, r.payload, r.metadata::jsonb \
                 FROM UNNEST($3::text[], $4::int8[], $5::uuid[], $6::text[], $7::int4[], \
                 $8::int8[], $9::bytea[], $10::text[]) WITH ORDINALITY \
                 AS r(stream_id, version, event_id, topic, schema_version, ts, payload, metadata, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM expected x WHERE x.actual <> x.expected){ahead_guard} \
                 ORDER BY r.n RETURNING position) \
                 SELECT position, NULL::text, NULL::int8, NULL::int8, NULL::int8 \
                 FROM inserted UNION ALL \
                 SELECT NULL, x.stream_id, x.expected, x.actual, x.n \
                 FROM expected x WHERE x.actual <> x.expected{ahead_row}"
            ),
            append_event,
            append_stream,
            // The tracking guard and the record in one statement: no row when the upstream
            // has a position at or above $3 (the first position the commit covers). Run after
            // the advisory lock (`track_lock`), in a statement of its own, so that its
            // snapshot sees what the previous holder of the lock committed.
            track: format!(
                "INSERT INTO {tracking} (upstream, position) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM {tracking} WHERE upstream = $1 AND position >= $3) \
                 ON CONFLICT DO NOTHING"
            ),
            track_lock: format!(
                "SELECT pg_advisory_xact_lock(hashtext('eventsourcing:track:{tracking}:' || $1))"
            ),
            select_asc: select("ASC"),
            select_desc: select("DESC"),
            by_id: format!("SELECT {EVENT_COLUMNS} FROM {events} WHERE event_id = $1::uuid"),
            delete_events: format!("DELETE FROM {events} WHERE stream_id = $1"),
            delete_snapshots: format!("DELETE FROM {snapshots} WHERE stream_id = $1"),
            update: format!(
                "UPDATE {events} SET topic = $4, schema_version = $5, \
                 \"timestamp\" = $6, payload = $7, metadata = $8::text::jsonb \
                 WHERE stream_id = $1 AND version = $2 AND event_id = $3::uuid"
            ),
            notifications: format!(
                "SELECT {EVENT_COLUMNS} FROM {events} WHERE position >= $1 AND position <= $2\
                 {readable} ORDER BY position LIMIT $3"
            ),
            notifications_topics: format!(
                "SELECT {EVENT_COLUMNS} FROM {events} WHERE position >= $1 AND position <= $2 \
                 AND topic = ANY($4::text[]){readable} ORDER BY position LIMIT $3"
            ),
            max_position: format!(
                "SELECT COALESCE(max(position), 0) FROM {events} WHERE true{readable}"
            ),
            max_tracking: format!("SELECT max(position) FROM {tracking} WHERE upstream = $1"),
            put_snapshot: format!(
                "INSERT INTO {snapshots} (stream_id, version, topic, schema_version, state, \
                 created_on, modified_on) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (stream_id, version) DO UPDATE SET topic = EXCLUDED.topic, \
                 schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, \
                 created_on = EXCLUDED.created_on, modified_on = EXCLUDED.modified_on"
            ),
            latest_snapshot: format!(
                "SELECT stream_id, version, topic, schema_version, state, created_on, modified_on \
                 FROM {snapshots} WHERE stream_id = $1 AND version <= $2 \
                 ORDER BY version DESC LIMIT 1"
            ),
            // $1 name, $2 owner, $3 time to live (µs). Taken when expired or released (a new
            // epoch), renewed when the owner holds it (the same epoch), else no row.
            acquire_lease: format!(
                "INSERT INTO {leases} AS l (name, owner, epoch, expires_at) \
                 VALUES ($1, $2, 1, {NOW_US} + $3::int8) \
                 ON CONFLICT (name) DO UPDATE SET \
                 epoch = CASE WHEN l.expires_at > {NOW_US} THEN l.epoch ELSE l.epoch + 1 END, \
                 owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE l.expires_at <= {NOW_US} OR l.owner = $2 \
                 RETURNING epoch"
            ),
            renew_lease: format!(
                "UPDATE {leases} SET expires_at = {NOW_US} + $4::int8 \
                 WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at > {NOW_US}"
            ),
            release_lease: format!(
                "UPDATE {leases} SET expires_at = 0 WHERE name = $1 AND owner = $2 AND epoch = $3"
            ),
            remove_lease: format!(
                "DELETE FROM {leases} \
                 WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at <= {NOW_US}"
            ),
            list_leases: format!(
                "SELECT name, owner, epoch, expires_at - {NOW_US} FROM {leases} \
                 WHERE left(name, length($1)) = $1 ORDER BY name"
            ),
            // The lock key is the qualified table name (validated identifiers: no quote).
            create_leases: format!(
                "SELECT pg_advisory_xact_lock(hashtext('eventsourcing:leases:{leases}')); \
                 CREATE TABLE IF NOT EXISTS {leases} (name TEXT PRIMARY KEY, owner TEXT NOT NULL, \
                 epoch BIGINT NOT NULL, expires_at BIGINT NOT NULL)"
            ),
            lease_held: format!(
                "SELECT 1 FROM {leases} \
                 WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at > {NOW_US} \
                 FOR SHARE"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The scale written into the SQL must be the one the Rust side assumes.
    #[test]
    fn sql_scale_matches_ordinal_bits() {
        assert_eq!(
            super::SCALE,
            (1u64 << super::super::ORDINAL_BITS).to_string()
        );
        assert!(super::HORIZON.contains("{scale}"), "{}", super::HORIZON);
        assert!(
            super::XID_POSITION.contains("{scale}"),
            "{}",
            super::XID_POSITION
        );
    }
}
