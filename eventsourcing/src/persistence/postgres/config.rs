//! Configuration of the PostgreSQL recorder: server URL, naming, pool and timeouts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::persistence::PersistenceError;

/// How the recorder keeps the global order gap-free for readers. See the module
/// documentation for the design, the proofs and the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OrderingMode {
    /// Positions derive from the appending transaction's id: `position = xid * 2^20 +
    /// ordinal`, and readers see only positions below the oldest transaction still running
    /// in the cluster (`pg_snapshot_xmin(pg_current_snapshot())`). Writers run in parallel;
    /// a follower waits for an in-flight writer instead of skipping it. Positions increase
    /// but are not dense, at most 2^20 events go in one append, and a long transaction
    /// anywhere on the server delays followers (see
    /// [`super::PostgresRecorder::follower_lag`]). The default.
    #[default]
    TransactionId,
    /// Each appending transaction takes `LOCK TABLE events IN EXCLUSIVE MODE` before it
    /// assigns positions, so positions are handed out in commit order and are dense (but for
    /// rolled-back appends). Readers are never blocked; writers of events are serialised.
    TableLock,
    /// A plain sequence, no ordering guarantee: a follower can skip an event that commits late
    /// with a lower position. Only for the tests that prove the gap test detects it.
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-hooks"))]
    UnorderedForTesting,
    /// Transaction-id positions but reads without the visibility horizon: broken in the same
    /// way. Only for the tests that prove the horizon is what keeps the order gap-free.
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-hooks"))]
    TransactionIdWithoutHorizonForTesting,
}

impl OrderingMode {
    /// The name stored in the schema's metadata row and accepted in URLs (`ordering=`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TransactionId => "xid",
            Self::TableLock => "table_lock",
            #[cfg(any(test, feature = "test-hooks"))]
            Self::TransactionIdWithoutHorizonForTesting => "xid",
            #[cfg(any(test, feature = "test-hooks"))]
            Self::UnorderedForTesting => "unordered_for_testing",
        }
    }

    /// Whether positions are derived from transaction ids.
    pub(super) fn uses_xid(self) -> bool {
        match self {
            Self::TransactionId => true,
            #[cfg(any(test, feature = "test-hooks"))]
            Self::TransactionIdWithoutHorizonForTesting => true,
            _ => false,
        }
    }

    /// The broken mode of the tests that prove the gap test catches unordered positions.
    pub(super) fn is_unordered(self) -> bool {
        #[cfg(any(test, feature = "test-hooks"))]
        if self == Self::UnorderedForTesting {
            return true;
        }
        false
    }

    fn parse(name: &str) -> Result<Self, PersistenceError> {
        match name {
            "xid" => Ok(Self::TransactionId),
            "table_lock" => Ok(Self::TableLock),
            _ => Err(PersistenceError::Config(format!(
                "`ordering` must be `xid` or `table_lock`, not `{name}`"
            ))),
        }
    }
}

/// When the server acknowledges a commit: the recorder pins its sessions'
/// `synchronous_commit`, whatever the server's configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SynchronousCommit {
    /// `on` (the default): a commit is acknowledged once its WAL is flushed (and, with
    /// synchronous standbys, flushed there too). A follower never reads an event that a crash
    /// can take back.
    #[default]
    On,
    /// `local`: flushed on the primary only; a failover to an asynchronous standby can lose
    /// acknowledged events.
    Local,
    /// `remote_write` (synchronous standbys have received, not yet flushed).
    RemoteWrite,
    /// `remote_apply` (synchronous standbys have applied: reads there see the event).
    RemoteApply,
    /// `off`: UNSAFE for followers. A crash of the server loses the last commits (up to three
    /// times `wal_writer_delay`) after followers may have read them, and their positions are
    /// then handed out again to other events. Only for stores nobody follows.
    Off,
}

impl SynchronousCommit {
    /// The setting's value, as PostgreSQL spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Local => "local",
            Self::RemoteWrite => "remote_write",
            Self::RemoteApply => "remote_apply",
            Self::Off => "off",
        }
    }

    fn parse(value: &str) -> Result<Self, PersistenceError> {
        match value {
            "on" => Ok(Self::On),
            "local" => Ok(Self::Local),
            "remote_write" => Ok(Self::RemoteWrite),
            "remote_apply" => Ok(Self::RemoteApply),
            "off" => Ok(Self::Off),
            _ => Err(PersistenceError::Config(format!(
                "`synchronous_commit` must be on, local, remote_write, remote_apply or off, not `{value}`"
            ))),
        }
    }
}

/// Settings of a [`super::PostgresRecorder`].
///
/// Names are validated as plain identifiers (`[A-Za-z_][A-Za-z0-9_]{0,62}`, including every
/// table and index name derived from the prefix) before any SQL is built; values are always
/// bind parameters.
///
/// ```
/// use std::time::Duration;
/// use eventsourcing::persistence::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://postgres@localhost/app")
///     .schema("billing")
///     .table_prefix("es_")
///     .pool_size(4)
///     .statement_timeout(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// assert!(PostgresConfig::new("postgres://x").schema("a; DROP").validate().is_err());
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(super) url: String,
    pub(super) schema: String,
    pub(super) table_prefix: String,
    pub(super) pool_size: u32,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
    pub(super) idle_in_transaction_timeout: Duration,
    pub(super) application_name: String,
    pub(super) notify_commits: bool,
    pub(super) ordering: OrderingMode,
    pub(super) synchronous_commit: SynchronousCommit,
    pub(super) read_own_writes_timeout: Duration,
    pub(super) skip_version_check: bool,
    pub(super) hold_in_transaction: Option<Duration>,
    pub(super) drop_schema_on_drop: bool,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_timeout",
                &self.idle_in_transaction_timeout,
            )
            .field("application_name", &self.application_name)
            .field("ordering", &self.ordering)
            .field("synchronous_commit", &self.synchronous_commit)
            .field("read_own_writes_timeout", &self.read_own_writes_timeout)
            .finish_non_exhaustive()
    }
}

/// The URL query parameters that [`PostgresConfig::from_url`] consumes itself; all others are
/// passed on to the driver (libpq-style options such as `sslmode` or `application_name`).
pub const URL_PARAMETERS: &[&str] = &[
    "schema",
    "table_prefix",
    "pool_size",
    "connect_timeout_ms",
    "statement_timeout_ms",
    "ordering",
    "synchronous_commit",
    "notify_commits",
];

impl PostgresConfig {
    /// Defaults: schema `public`, no table prefix (tables `events`, `tracking`, `snapshots`,
    /// `eventsourcing_schema`), a pool of 8 connections, a 10 s connect timeout, a 30 s
    /// statement (and lock wait) timeout, a 10 s idle-in-transaction timeout,
    /// [`OrderingMode::TransactionId`], `synchronous_commit = on` ([`SynchronousCommit::On`],
    /// pinned whatever the server's default) and a 5 s read-own-writes timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "public".into(),
            table_prefix: String::new(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(10),
            application_name: "eventsourcing".into(),
            notify_commits: true,
            ordering: OrderingMode::default(),
            synchronous_commit: SynchronousCommit::On,
            read_own_writes_timeout: Duration::from_secs(5),
            skip_version_check: false,
            hold_in_transaction: None,
            drop_schema_on_drop: false,
        }
    }

    /// A configuration from a store URL or a libpq `key=value` connection string. In a URL
    /// the query parameters listed in [`URL_PARAMETERS`] (`schema`, `table_prefix`,
    /// `pool_size`, `connect_timeout_ms`, `statement_timeout_ms`, `ordering=xid|table_lock`,
    /// `synchronous_commit=on|local|remote_write|remote_apply|off`) are taken out,
    /// percent-decoded; the rest of the URL goes to the driver unchanged. A `key=value`
    /// string goes to the driver whole (set this crate's options with the builder methods).
    /// Either form is checked by the driver's own parser here, so a malformed one is refused
    /// before any connection is tried.
    ///
    /// ```
    /// use eventsourcing::persistence::PostgresConfig;
    /// let config =
    ///     PostgresConfig::from_url("postgres://u@h/db?schema=shop&sslmode=disable&pool_size=2")?;
    /// assert_eq!(config.schema_name(), "shop");
    /// let config = PostgresConfig::from_url("host=127.0.0.1 user=postgres dbname=test")?;
    /// assert_eq!(config.schema_name(), "public");
    /// # Ok::<(), eventsourcing::PersistenceError>(())
    /// ```
    ///
    /// # Errors
    /// [`PersistenceError::Config`] for a malformed URL, string or value, or an invalid name.
    pub fn from_url(url: &str) -> Result<Self, PersistenceError> {
        let driver_check = |text: &str| {
            postgres::Config::from_str(text)
                .map(|_| ())
                .map_err(|e| PersistenceError::Config(format!("PostgreSQL connection string: {e}")))
        };
        if !url.contains("://") {
            driver_check(url)?;
            let config = Self::new(url);
            config.validate()?;
            return Ok(config);
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut passed_on = Vec::new();
        let mut config = Self::new(base);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // libpq's own decoding: `%XX` escapes only (a `+` stays a `+`).
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| {
                    PersistenceError::Config(format!("`{key}` is not UTF-8 once percent-decoded"))
                })?;
            let millis = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        PersistenceError::Config(format!(
                            "`{key}` must be a number of milliseconds, not `{value}`"
                        ))
                    })
            };
            match key {
                "schema" => config.schema = value.into_owned(),
                "table_prefix" => config.table_prefix = value.into_owned(),
                "pool_size" => {
                    config.pool_size = value.parse().map_err(|_| {
                        PersistenceError::Config(format!(
                            "`pool_size` must be a positive integer, not `{value}`"
                        ))
                    })?;
                }
                "connect_timeout_ms" => config.connect_timeout = millis()?,
                "statement_timeout_ms" => config.statement_timeout = millis()?,
                "ordering" => config.ordering = OrderingMode::parse(&value)?,
                "synchronous_commit" => {
                    config.synchronous_commit = SynchronousCommit::parse(&value)?;
                }
                "notify_commits" => {
                    config.notify_commits = match &*value {
                        "on" | "true" => true,
                        "off" | "false" => false,
                        _ => {
                            return Err(PersistenceError::Config(format!(
                                "`notify_commits` must be `on` or `off`, not `{value}`"
                            )))
                        }
                    };
                }
                // The driver's options go on as written: it decodes them itself.
                _ => passed_on.push(pair),
            }
        }
        if !passed_on.is_empty() {
            config.url = format!("{base}?{}", passed_on.join("&"));
        }
        driver_check(&config.url)?;
        config.validate()?;
        Ok(config)
    }

    /// The sessions' `synchronous_commit` (default [`SynchronousCommit::On`]). Anything but
    /// `on` can lose acknowledged events in a crash or a failover; `off` is unsafe for
    /// followers (see [`SynchronousCommit::Off`]).
    #[must_use]
    pub fn synchronous_commit(mut self, mode: SynchronousCommit) -> Self {
        self.synchronous_commit = mode;
        self
    }

    /// Whether appends announce their commits to listeners in other processes (default on;
    /// URL `notify_commits=off`): see
    /// [`PostgresRecorder::listen_for_commits`](super::PostgresRecorder::listen_for_commits).
    /// One coalesced `NOTIFY` after commits, sent by a thread of the recorder on a connection
    /// of its own, never inside the append.
    #[must_use]
    pub fn notify_commits(mut self, on: bool) -> Self {
        self.notify_commits = on;
        self
    }

    /// The schema holding the tables (default `public`); created if missing.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// A prefix for every table and index name (default none), so that several stores can
    /// share one schema.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// The most connections the pool opens (default 8).
    #[must_use]
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// How long to wait for a connection, new or from the pool (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` and `lock_timeout` of every connection (default
    /// 30 s). A statement or lock wait that takes longer fails with
    /// [`PersistenceError::Busy`].
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The server-side `idle_in_transaction_session_timeout` (default 10 s): bounds how long a
    /// stalled client of this store can hold the append lock ([`OrderingMode::TableLock`]) or
    /// hold followers back ([`OrderingMode::TransactionId`]).
    #[must_use]
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = timeout;
        self
    }

    /// The `application_name` the connections report in `pg_stat_activity` (default
    /// `eventsourcing`).
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// The schema name.
    #[must_use]
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Chooses the ordering mechanism (default [`OrderingMode::TransactionId`]). A schema
    /// remembers the mode it was created with and refuses to open in another.
    #[must_use]
    pub fn ordering(mut self, ordering: OrderingMode) -> Self {
        self.ordering = ordering;
        self
    }

    /// The ordering mechanism.
    #[must_use]
    pub fn ordering_mode(&self) -> OrderingMode {
        self.ordering
    }

    /// With [`OrderingMode::TransactionId`], how long `select_notifications` and
    /// `max_position` wait for the visibility horizon to pass this recorder's own last append
    /// (default 5 s), so that a caller reads its own writes even while another transaction
    /// in the cluster is still open. After the wait they return what is readable. Zero
    /// disables the wait.
    #[must_use]
    pub fn read_own_writes_timeout(mut self, timeout: Duration) -> Self {
        self.read_own_writes_timeout = timeout;
        self
    }

    /// Test hook: skip the version check inside the append transaction, leaving only the
    /// unique index to catch racing writers.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn skip_version_check_for_testing(mut self) -> Self {
        self.skip_version_check = true;
        self
    }

    /// Test hook: sleep this long inside every appending transaction, after the events are
    /// inserted and before commit, to widen race windows deterministically.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn hold_in_transaction_for_testing(mut self, hold: Duration) -> Self {
        self.hold_in_transaction = Some(hold);
        self
    }

    /// Test hook: `DROP SCHEMA ... CASCADE` when the recorder is dropped.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn drop_schema_on_drop_for_testing(mut self) -> Self {
        self.drop_schema_on_drop = true;
        self
    }

    /// Checks every name and setting without connecting.
    ///
    /// # Errors
    /// [`PersistenceError::Config`] naming the first invalid value.
    pub fn validate(&self) -> Result<(), PersistenceError> {
        Names::new(&self.schema, &self.table_prefix)?;
        if self.pool_size == 0 {
            return Err(PersistenceError::Config(
                "the PostgreSQL pool size must be at least 1".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(PersistenceError::Config(
                "the PostgreSQL connect timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `name` is a plain SQL identifier that needs no escaping:
/// `[A-Za-z_][A-Za-z0-9_]{0,62}`.
#[must_use]
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// The validated names of the schema, tables and indexes.
#[derive(Debug, Clone)]
pub(super) struct Names {
    pub(super) schema: String,
    pub(super) events: String,
    pub(super) tracking: String,
    pub(super) snapshots: String,
    pub(super) leases: String,
    pub(super) meta: String,
    pub(super) event_id_key: String,
    pub(super) stream_version_key: String,
    pub(super) topic_position_key: String,
}

impl Names {
    pub(super) fn new(schema: &str, prefix: &str) -> Result<Self, PersistenceError> {
        let check = |what: &str, name: String| {
            if is_identifier(&name) {
                Ok(name)
            } else {
                Err(PersistenceError::Config(format!(
                    "{what} `{name}` is not a valid identifier: expected [A-Za-z_][A-Za-z0-9_]{{0,62}}"
                )))
            }
        };
        let table = |name: &str| check("the PostgreSQL table name", format!("{prefix}{name}"));
        Ok(Self {
            schema: check("the PostgreSQL schema name", schema.to_owned())?,
            events: table("events")?,
            tracking: table("tracking")?,
            snapshots: table("snapshots")?,
            leases: table("leases")?,
            meta: table("eventsourcing_schema")?,
            event_id_key: table("events_event_id_key")?,
            stream_version_key: table("events_stream_version_key")?,
            topic_position_key: table("events_topic_position_idx")?,
        })
    }

    /// `"schema"."table"`.
    pub(super) fn qualified(&self, table: &str) -> String {
        format!("\"{}\".\"{table}\"", self.schema)
    }

    /// The schema script with the names substituted.
    pub(super) fn schema_sql(&self) -> String {
        include_str!("schema.sql")
            .replace("{schema}", &self.schema)
            .replace("{events}", &self.events)
            .replace("{tracking}", &self.tracking)
            .replace("{snapshots}", &self.snapshots)
            .replace("{leases}", &self.leases)
            .replace("{meta}", &self.meta)
            .replace("{event_id_key}", &self.event_id_key)
            .replace("{stream_version_key}", &self.stream_version_key)
            .replace("{topic_position_key}", &self.topic_position_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_", "events", "A_1", &"x".repeat(63)] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a-b",
            "a b",
            "a\"b",
            "é",
            &"x".repeat(64),
            "a;drop",
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_url() {
        assert!(
            Names::new("public", &"p".repeat(40)).is_err(),
            "derived names too long"
        );
        let config = PostgresConfig::from_url(
            "postgres://u@h/db?schema=s1&table_prefix=t_&sslmode=disable&pool_size=3&ordering=table_lock",
        )
        .map_err(|e| e.to_string());
        let config = config.as_ref().map_err(Clone::clone);
        assert!(
            matches!(config, Ok(c) if c.schema == "s1" && c.table_prefix == "t_"
            && c.pool_size == 3 && c.ordering == OrderingMode::TableLock && c.url == "postgres://u@h/db?sslmode=disable")
        );
        assert!(PostgresConfig::from_url("postgres://h/db?schema=bad-name").is_err());
        assert!(PostgresConfig::from_url("postgres://h/db?pool_size=x").is_err());
        assert!(PostgresConfig::from_url("postgres://h/db?ordering=fast").is_err());
        // Values are percent-decoded; what goes to the driver is encoded again.
        let config = PostgresConfig::from_url(
            "postgres://h/db?schema=sh%6Fp&application_name=my%20app%26co",
        );
        assert!(matches!(&config, Ok(c) if c.schema == "shop"
            && c.url == "postgres://h/db?application_name=my%20app%26co"));
        // libpq key=value strings, through the driver's parser.
        let config = PostgresConfig::from_url("host=127.0.0.1 user=postgres dbname=test");
        assert!(matches!(&config, Ok(c) if c.url == "host=127.0.0.1 user=postgres dbname=test"));
        assert!(PostgresConfig::from_url("host='unterminated").is_err());
        assert!(PostgresConfig::from_url("postgres://h/db?port=notanumber").is_err());
        assert_eq!(
            PostgresConfig::new("postgres://h/db").ordering,
            OrderingMode::TransactionId
        );
        let schema = Names::new("s", "p_")
            .map(|n| n.schema_sql())
            .unwrap_or_default();
        assert!(schema.contains("\"s\".\"p_events\"") && !schema.contains("{events}"));
    }
}
