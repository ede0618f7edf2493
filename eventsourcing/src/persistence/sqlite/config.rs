//! How a [`SqliteRecorder`](super::SqliteRecorder) opens its database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::persistence::PersistenceError;

/// The path that names a private in-memory database.
pub const IN_MEMORY: &str = ":memory:";

/// The `synchronous` pragma: how hard SQLite works to make a commit survive a power loss.
///
/// Both settings keep the database consistent after a crash of the process or of the machine
/// (WAL mode never corrupts the file); they differ in whether the *last* commits survive a
/// power loss or an operating-system crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// `PRAGMA synchronous = NORMAL`: the write-ahead log is synced only at checkpoints. A
    /// commit that returned may be lost (rolled back) if the machine loses power before the
    /// next checkpoint; a crash of the process alone loses nothing. Commits cost no `fsync`.
    Normal,
    /// `PRAGMA synchronous = FULL` (the default): the write-ahead log is synced on every
    /// commit, so a commit that returned survives a power loss. Costs one `fsync` a commit.
    #[default]
    Full,
}

impl Synchronous {
    /// The pragma value.
    #[must_use]
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }

    /// Reads the integer SQLite reports for `PRAGMA synchronous` (1 NORMAL, 2 FULL); `None`
    /// for OFF (0), EXTRA (3) or anything else.
    #[must_use]
    pub fn from_pragma(value: i64) -> Option<Self> {
        match value {
            1 => Some(Self::Normal),
            2 => Some(Self::Full),
            _ => None,
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// Settings of a [`SqliteRecorder`](super::SqliteRecorder): the file, the durability level,
/// how long to wait for a lock, an optional table prefix and the number of idle read
/// connections kept.
///
/// ```
/// use std::time::Duration;
/// use eventsourcing::persistence::{SqliteConfig, Synchronous};
///
/// let config = SqliteConfig::new("app.db")
///     .synchronous(Synchronous::Normal)
///     .busy_timeout(Duration::from_secs(10))
///     .table_prefix("orders_");
/// assert_eq!(config.synchronous_setting(), Synchronous::Normal);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    pub(super) path: PathBuf,
    pub(super) synchronous: Synchronous,
    pub(super) busy_timeout: Duration,
    pub(super) table_prefix: String,
    pub(super) max_idle_readers: usize,
    pub(super) skip_version_check: bool,
    pub(super) max_page_count: Option<u32>,
}

impl SqliteConfig {
    /// The default wait for a lock held by another connection or process.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// The default number of idle read connections kept open.
    pub const DEFAULT_MAX_IDLE_READERS: usize = 4;

    /// A database file at `path` (created if missing; its directory must exist), with
    /// `synchronous = FULL`, a 5 s busy timeout, no table prefix and up to 4 idle readers.
    /// The path [`IN_MEMORY`] (`":memory:"`) names a private in-memory database.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::Full,
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            table_prefix: String::new(),
            max_idle_readers: Self::DEFAULT_MAX_IDLE_READERS,
            skip_version_check: false,
            max_page_count: None,
        }
    }

    /// A private in-memory database: gone when the recorder is dropped. Every operation goes
    /// through one connection (another connection would see another, empty database).
    #[must_use]
    pub fn in_memory() -> Self {
        Self::new(IN_MEMORY)
    }

    /// Sets the `synchronous` pragma (see [`Synchronous`]).
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long to wait for a lock held by another process before failing with
    /// [`PersistenceError::Busy`].
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// A prefix for the table names (`{prefix}events`, `{prefix}tracking`,
    /// `{prefix}snapshots`), so that several applications can share one file. Letters, digits
    /// and underscores only, not starting with a digit; checked when the recorder opens.
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// How many idle read connections to keep open (file databases only). Readers are opened
    /// on demand; more than this may be open at once under load, the extra ones are closed
    /// when returned.
    #[must_use]
    pub fn max_idle_readers(mut self, readers: usize) -> Self {
        self.max_idle_readers = readers;
        self
    }

    /// FOR TESTS ONLY: skips the expected-version check on append, to prove that the
    /// conformance suite catches a recorder without it. Never use this in an application.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn skip_version_check_for_tests(mut self) -> Self {
        self.skip_version_check = true;
        self
    }

    /// FOR TESTS ONLY: caps the database at `pages` pages (`PRAGMA max_page_count` on the
    /// writer connection), to simulate a full disk. Never use this in an application.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn max_page_count_for_testing(mut self, pages: u32) -> Self {
        self.max_page_count = Some(pages);
        self
    }

    /// The database path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configured `synchronous` setting.
    #[must_use]
    pub fn synchronous_setting(&self) -> Synchronous {
        self.synchronous
    }

    /// The configured table prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.table_prefix
    }

    /// Whether the path names a private in-memory database.
    #[must_use]
    pub fn is_in_memory(&self) -> bool {
        self.path.as_os_str() == IN_MEMORY
    }

    pub(super) fn validate(&self) -> Result<(), PersistenceError> {
        let prefix = &self.table_prefix;
        let valid = prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !prefix.starts_with(|c: char| c.is_ascii_digit())
            && prefix.len() <= 64;
        if !valid {
            return Err(PersistenceError::Config(format!(
                "invalid SQLite table prefix {prefix:?}: use at most 64 ASCII letters, digits \
                 and underscores, not starting with a digit"
            )));
        }
        if self.path.as_os_str().is_empty() {
            return Err(PersistenceError::Config(
                "the SQLite database path is empty".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SqliteConfig {
    /// `eventsourcing.db` in the working directory.
    fn default() -> Self {
        Self::new("eventsourcing.db")
    }
}
