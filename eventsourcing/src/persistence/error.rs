//! The persistence layer's error type.

use thiserror::Error;

use crate::domain::DomainError;

/// A boxed backend error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Another writer got there first: a stream was not at the version a writer expected, and
/// nothing was written. Reload and retry. One type carried by every layer's error
/// ([`PersistenceError::Conflict`], [`ApplicationError::Conflict`](crate::ApplicationError::Conflict),
/// [`SystemError::Conflict`](crate::SystemError::Conflict)), so that code handling conflicts
/// reads the same fields wherever it meets one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("conflict on stream `{stream_id}`: expected version {expected}, found {actual}; nothing was written")]
pub struct Conflict {
    /// The stream that moved on.
    pub stream_id: String,
    /// The version the writer expected.
    pub expected: u64,
    /// The version the stream has.
    pub actual: u64,
}

/// Everything that can go wrong when storing or reading events.
///
/// Conflicts are distinct from backend failures: a conflict means another writer got there
/// first and nothing was written, so reloading and retrying is the right response.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PersistenceError {
    /// The stream was not at the expected version; nothing of the batch was written.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The upstream position was already recorded: the input was processed before.
    #[error("upstream `{upstream}` position {position} is already tracked")]
    AlreadyTracked {
        /// The upstream application.
        upstream: String,
        /// The position.
        position: u64,
    },
    /// The commit was fenced by a lease that its committer does not hold any more (it expired
    /// or another instance took it over); nothing was written.
    #[error(
        "lease `{lease}` is no longer held by `{owner}` at epoch {epoch} (it expired or was taken over): nothing was written"
    )]
    Fenced {
        /// The lease's name.
        lease: String,
        /// The committer that thought it held it.
        owner: String,
        /// The epoch it held.
        epoch: u64,
    },
    /// A batch that breaks the recorder contract (versions not contiguous, empty stream id...).
    #[error("invalid batch for stream `{stream_id}`: {reason}")]
    InvalidBatch {
        /// The stream concerned.
        stream_id: String,
        /// What is wrong.
        reason: String,
    },
    /// An update named an event that is not stored.
    #[error("no stored event at version {version} of stream `{stream_id}`")]
    EventNotFound {
        /// The stream.
        stream_id: String,
        /// The version.
        version: u64,
    },
    /// A configured limit was exceeded; checked before any I/O.
    #[error("{what} is {actual}, above the limit of {limit}")]
    LimitExceeded {
        /// What was measured, e.g. "event payload size in bytes".
        what: &'static str,
        /// The limit.
        limit: u64,
        /// The measured value.
        actual: u64,
    },
    /// A stored event could not be read back into a domain event.
    #[error("stored event at version {version} of stream `{stream_id}` (position {position:?}, topic `{topic}`) cannot be decoded: {source}")]
    Decode {
        /// The stream.
        stream_id: String,
        /// The version.
        version: u64,
        /// The global position, when known.
        position: Option<u64>,
        /// The stored topic.
        topic: String,
        /// What went wrong.
        #[source]
        source: DomainError,
    },
    /// A domain event could not be encoded.
    #[error("event for stream `{stream_id}` cannot be encoded: {source}")]
    Encode {
        /// The stream.
        stream_id: String,
        /// What went wrong.
        #[source]
        source: DomainError,
    },
    /// A transcoder (compression or encryption) failed, e.g. a wrong key.
    #[error("transcoding failed: {reason}")]
    Transcode {
        /// What went wrong.
        reason: String,
    },
    /// Stored data that breaks the store's own invariants (a corrupt row).
    #[error("corrupt stored data: {detail}")]
    Corrupt {
        /// What is wrong, naming the row.
        detail: String,
    },
    /// The database cannot be reached or the connection was lost.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database is busy or locked and the wait timed out.
    #[error("{backend} is busy: {source}")]
    Busy {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database or its disk is full.
    #[error("{backend} storage is full: {source}")]
    StorageFull {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database is read-only.
    #[error("{backend} is read-only: {source}")]
    ReadOnly {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database's schema is newer than this code knows (written by a later version of the
    /// library), or unreadable; it was left untouched.
    #[error("{backend} schema version {found} is not supported: this code supports versions up to {supported}")]
    SchemaVersion {
        /// Which backend.
        backend: &'static str,
        /// The version found in the database.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// The next global positions would not fit a 64-bit position (PostgreSQL's
    /// transaction-id ordering after about 2^43 transactions, or an offset near the end);
    /// nothing was written. Copy the store into a fresh cluster or switch it to the
    /// table-lock ordering.
    #[error("{backend}: the next global positions would overflow 64 bits; nothing was written")]
    PositionOverflow {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend cannot do this at all (e.g. a global log on Cassandra); nothing was
    /// written.
    #[error("{backend} does not support {operation}: {reason}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// What was asked for.
        operation: &'static str,
        /// Why it cannot be done, and what to use instead.
        reason: &'static str,
    },
    /// Invalid configuration (a bad URL, table name or setting).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Any other backend failure.
    #[error("{backend} failed: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl PersistenceError {
    /// True for [`PersistenceError::Conflict`].
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// The conflict, for [`PersistenceError::Conflict`].
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Conflict(conflict) => Some(conflict),
            _ => None,
        }
    }

    /// True for errors that may go away on retry (unavailable or busy database).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Busy { .. })
    }
}
