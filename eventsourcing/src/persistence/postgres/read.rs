//! Reading events: stream loads and `for_each_event` (rows decoded as they arrive, none
//! buffered), notification pages and `max_position` after the read-your-writes wait, the
//! readable horizon, and how far followers are behind it.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use uuid::Uuid;

use super::append::CHUNK_ROWS;
use super::config::OrderingMode;
use super::error::{classify, BACKEND};
use super::pool::Conn;
use super::rows::{corrupt, decode_event, decode_event_ref};
use super::PostgresRecorder;
use crate::persistence::{
    EventQuery, NotificationQuery, PersistenceError, StoredEvent, StoredEventRef,
};

/// How far followers are behind the committed log: see [`PostgresRecorder::follower_lag`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FollowerLag {
    /// The highest position followers can read now (what `max_position` returns).
    pub readable: u64,
    /// The highest committed position, readable or not. Above `readable` while an older
    /// transaction is still running somewhere in the cluster.
    pub committed: u64,
    /// The transaction holding the horizon back, when one is running and visible in
    /// `pg_stat_activity`, or is a prepared transaction (only with
    /// [`OrderingMode::TransactionId`]).
    pub blocker: Option<Blocker>,
}

impl FollowerLag {
    /// Whether some committed events are not readable yet.
    #[must_use]
    pub fn is_behind(&self) -> bool {
        self.committed > self.readable
    }
}

/// The oldest running transaction of the cluster, as `pg_stat_activity` (or, for a prepared
/// transaction, `pg_prepared_xacts`) shows it; fields the connecting role may not see are
/// `None`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Blocker {
    /// The server process id (`pg_terminate_backend` takes it); 0 for a prepared
    /// transaction, which has no process.
    pub pid: i32,
    /// The global id of a prepared transaction (`COMMIT PREPARED` or `ROLLBACK PREPARED`
    /// ends it; it survives restarts and holds followers back until then).
    pub prepared: Option<String>,
    /// The database it is connected to: any database of the cluster holds the horizon.
    pub database: Option<String>,
    /// Its `application_name`.
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, ...
    pub state: Option<String>,
    /// How long its transaction has been open.
    pub transaction_age: Option<Duration>,
}

impl PostgresRecorder {
    /// The highest position readers can see now, in position units (`u64::MAX` when every
    /// committed row is readable, as in the table-lock mode).
    fn horizon(&self, conn: &mut Conn) -> Result<u64, PersistenceError> {
        let row = conn
            .prepared_one(&self.sql.horizon, &[])
            .map_err(classify)?;
        let horizon: i64 = row.try_get(0).map_err(|e| corrupt(None, "horizon", e))?;
        let horizon = u64::try_from(horizon).map_err(|e| corrupt(Some(horizon), "horizon", e))?;
        self.horizon_seen.fetch_max(horizon, Ordering::Relaxed);
        Ok(horizon)
    }

    /// Read-your-writes with [`OrderingMode::TransactionId`]: waits (at most the configured
    /// read-own-writes timeout) until the horizon has passed this recorder's last append.
    fn await_own_writes(&self, conn: &mut Conn) -> Result<(), PersistenceError> {
        if self.config.ordering != OrderingMode::TransactionId {
            return Ok(());
        }
        let target = self.last_appended.load(Ordering::Relaxed);
        if target == 0 || self.horizon_seen.load(Ordering::Relaxed) > target {
            return Ok(());
        }
        let mut horizon = self.horizon(conn)?;
        // A wait already timed out at this horizon: it is stuck behind a long transaction,
        // and waiting again would cost every read the whole timeout. Read what is readable.
        let stalled = self.stalled_at.load(Ordering::Relaxed);
        if stalled != 0 && horizon <= stalled {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.read_own_writes_timeout;
        let mut pause = Duration::from_micros(500);
        while horizon <= target {
            if Instant::now() >= deadline {
                self.stalled_at.store(horizon.max(1), Ordering::Relaxed);
                self.stalls.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
            horizon = self.horizon(conn)?;
        }
        Ok(())
    }

    /// How many read-your-writes waits timed out behind a stuck horizon (a long or
    /// prepared transaction somewhere in the cluster: [`PostgresRecorder::follower_lag`]
    /// names it). After one, reads stop waiting until the horizon moves, and return what is
    /// readable (gap-free, but without this recorder's newest appends).
    #[must_use]
    pub fn read_own_writes_stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// How far followers are behind the committed log, and, with
    /// [`OrderingMode::TransactionId`], which transaction of the cluster holds them back.
    ///
    /// ```no_run
    /// # use eventsourcing::persistence::{PostgresConfig, PostgresRecorder};
    /// # let recorder = PostgresRecorder::open(PostgresConfig::new("postgres://localhost/db"))?;
    /// let lag = recorder.follower_lag()?;
    /// if lag.is_behind() {
    ///     eprintln!("{} committed but not readable; blocked by {:?}",
    ///         lag.committed - lag.readable, lag.blocker);
    /// }
    /// # Ok::<(), eventsourcing::PersistenceError>(())
    /// ```
    ///
    /// # Errors
    /// Backend failures.
    pub fn follower_lag(&self) -> Result<FollowerLag, PersistenceError> {
        let mut conn = self.conn()?;
        let row = conn.prepared_one(&self.sql.lag, &[]).map_err(classify)?;
        let bad = |what: &str, e: &dyn std::fmt::Display| corrupt(None, what, e);
        let position = |index: usize, what: &str| -> Result<u64, PersistenceError> {
            let value: i64 = row.try_get(index).map_err(|e| bad(what, &e))?;
            u64::try_from(value).map_err(|e| bad(what, &e))
        };
        let readable = position(1, "readable position")?;
        let committed = position(2, "committed position")?;
        let pid: Option<i32> = row.try_get(3).map_err(|e| bad("blocker pid", &e))?;
        let prepared: Option<String> = row.try_get(8).map_err(|e| bad("prepared gid", &e))?;
        let blocker = match (pid, prepared) {
            (pid, prepared)
                if (pid.is_some() || prepared.is_some())
                    && self.config.ordering == OrderingMode::TransactionId =>
            {
                let age: Option<f64> = row.try_get(7).map_err(|e| bad("blocker age", &e))?;
                Some(Blocker {
                    pid: pid.unwrap_or(0),
                    prepared,
                    database: row.try_get(4).map_err(|e| bad("blocker database", &e))?,
                    application_name: row.try_get(5).map_err(|e| bad("blocker name", &e))?,
                    state: row.try_get(6).map_err(|e| bad("blocker state", &e))?,
                    transaction_age: age
                        .filter(|a| a.is_finite() && *a >= 0.0)
                        .map(Duration::from_secs_f64),
                })
            }
            _ => None,
        };
        Ok(FollowerLag {
            readable,
            committed,
            blocker,
        })
    }

    /// `for_each_event`: streams the rows (`query_raw`), each decoded and visited as it
    /// arrives while the server is still sending the next ones; none is buffered.
    pub(super) fn load_stream(
        &self,
        stream_id: &str,
        query: &EventQuery,
        visit: &mut dyn FnMut(StoredEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), PersistenceError> {
        let Ok(from) = i64::try_from(query.from_version.unwrap_or(0)) else {
            return Ok(());
        };
        let to = query
            .to_version
            .map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let limit = query
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = if query.descending {
            &self.sql.select_desc
        } else {
            &self.sql.select_asc
        };
        let mut conn = self.conn()?;
        let (client, statement) = conn.prepared(sql).map_err(classify)?;
        let params: [&(dyn ToSql + Sync); 4] = [&stream_id, &from, &to, &limit];
        let mut rows = client.query_raw(&statement, params).map_err(classify)?;
        while let Some(row) = rows.next().map_err(classify)? {
            if visit(decode_event_ref(&row, Some(stream_id))?).is_break() {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn load_event_by_id(
        &self,
        event_id: Uuid,
    ) -> Result<Option<StoredEvent>, PersistenceError> {
        let mut conn = self.conn()?;
        let (client, statement) = conn.prepared(&self.sql.by_id).map_err(classify)?;
        client
            .query_opt(&statement, &[&event_id])
            .map_err(classify)?
            .as_ref()
            .map(decode_event)
            .transpose()
    }

    /// Appends a page of the log to `into`, leaving `into` as it was on error.
    pub(super) fn load_notifications(
        &self,
        query: &NotificationQuery,
        into: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let start = into.len();
        let result = self.load_notifications_unchecked(query, into);
        if result.is_err() {
            into.truncate(start);
        }
        result
    }

    fn load_notifications_unchecked(
        &self,
        query: &NotificationQuery,
        events: &mut Vec<StoredEvent>,
    ) -> Result<(), PersistenceError> {
        let Ok(from) = i64::try_from(query.from_position) else {
            return Ok(());
        };
        let to = query
            .to_position
            .map_or(i64::MAX, |p| i64::try_from(p).unwrap_or(i64::MAX));
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let mut conn = self.conn()?;
        self.await_own_writes(&mut conn)?;
        events.reserve(query.limit.min(CHUNK_ROWS));
        if query.topics.is_empty() {
            let (client, statement) = conn.prepared(&self.sql.notifications).map_err(classify)?;
            let params: [&(dyn ToSql + Sync); 3] = [&from, &to, &limit];
            // Streamed (`query_raw`): rows are decoded as they arrive, while the server is
            // still producing the rest of the page.
            let mut rows = client.query_raw(&statement, params).map_err(classify)?;
            while let Some(row) = rows.next().map_err(classify)? {
                events.push(decode_event(&row)?);
            }
            return Ok(());
        }
        let (client, statement) = conn
            .prepared(&self.sql.notifications_topics)
            .map_err(classify)?;
        let params: [&(dyn ToSql + Sync); 4] = [&from, &to, &limit, &query.topics];
        if !self.generic_plans {
            let mut rows = client.query_raw(&statement, params).map_err(classify)?;
            while let Some(row) = rows.next().map_err(classify)? {
                events.push(decode_event(&row)?);
            }
            return Ok(());
        }
        // Which index serves a topic filter depends on the topics' frequencies, which only a
        // custom plan sees: the generic plan scans the log by position and filters (32 ms
        // against 0.08 ms for a rare topic in 300,000 events). Three more round trips
        // (BEGIN, SET LOCAL, COMMIT), for topic-filtered pages only.
        let mut tx = client.transaction().map_err(classify)?;
        tx.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
            .map_err(classify)?;
        {
            let mut rows = tx.query_raw(&statement, params).map_err(classify)?;
            while let Some(row) = rows.next().map_err(classify)? {
                events.push(decode_event(&row)?);
            }
        }
        tx.commit().map_err(classify)
    }

    pub(super) fn load_max_position(&self) -> Result<u64, PersistenceError> {
        let mut conn = self.conn()?;
        self.await_own_writes(&mut conn)?;
        let row = conn
            .prepared_one(&self.sql.max_position, &[])
            .map_err(classify)?;
        let max: i64 = row
            .try_get(0)
            .map_err(|e| corrupt(None, "max position", e))?;
        u64::try_from(max).map_err(|e| corrupt(Some(max), "max position", e))
    }

    pub(super) fn load_max_tracking_position(
        &self,
        upstream: &str,
    ) -> Result<Option<u64>, PersistenceError> {
        let row = self
            .conn()?
            .prepared_one(&self.sql.max_tracking, &[&upstream])
            .map_err(classify)?;
        let max: Option<i64> = row
            .try_get(0)
            .map_err(|e| corrupt(None, "tracking position", e))?;
        max.map(|p| {
            u64::try_from(p).map_err(|e| PersistenceError::Corrupt {
                detail: format!("{BACKEND} tracking position {p} of `{upstream}`: {e}"),
            })
        })
        .transpose()
    }
}
