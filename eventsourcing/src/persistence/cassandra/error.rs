//! Classification of driver errors into [`PersistenceError`] variants, by the server's error
//! code and the driver's error kind, never by message text.

use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};

use crate::persistence::PersistenceError;

pub(super) const BACKEND: &str = "Cassandra";

/// What an error of a conditional write says about its outcome.
pub(super) enum Outcome {
    /// The request failed before or without being applied.
    NotApplied(PersistenceError),
    /// A lightweight transaction timed out: it may have been applied or not.
    Unknown(PersistenceError),
}

/// Maps a driver error to the persistence error a caller can act on.
pub(super) fn classify(error: ExecutionError) -> PersistenceError {
    match outcome(error) {
        Outcome::NotApplied(error) | Outcome::Unknown(error) => error,
    }
}

/// As [`classify`], telling apart a conditional write whose outcome is unknown.
pub(super) fn outcome(error: ExecutionError) -> Outcome {
    let db = match &error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => Some(db.clone()),
        _ => None,
    };
    let source = Box::new(error);
    let unknown = matches!(
        db,
        Some(DbError::WriteTimeout {
            write_type: scylla::errors::WriteType::Cas,
            ..
        })
    );
    let classified = match db {
        Some(
            DbError::Overloaded
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::TruncateError
            | DbError::RateLimitReached { .. },
        ) => PersistenceError::Busy {
            backend: BACKEND,
            source,
        },
        Some(DbError::Unavailable { .. } | DbError::IsBootstrapping) => {
            PersistenceError::Unavailable {
                backend: BACKEND,
                source,
            }
        }
        Some(_) => PersistenceError::Backend {
            backend: BACKEND,
            source,
        },
        // No answer from the server: the connection is gone, the pool is empty, or the
        // client-side timeout ran out.
        None => PersistenceError::Unavailable {
            backend: BACKEND,
            source,
        },
    };
    if unknown {
        Outcome::Unknown(classified)
    } else {
        Outcome::NotApplied(classified)
    }
}

pub(super) fn from_session(error: NewSessionError) -> PersistenceError {
    PersistenceError::Unavailable {
        backend: BACKEND,
        source: Box::new(error),
    }
}

pub(super) fn from_prepare(error: PrepareError) -> PersistenceError {
    PersistenceError::Backend {
        backend: BACKEND,
        source: Box::new(error),
    }
}

/// A response that does not have the rows or columns the recorder asked for: the schema was
/// changed under it.
pub(super) fn from_rows(error: impl std::fmt::Display) -> PersistenceError {
    PersistenceError::Corrupt {
        detail: format!("a Cassandra response has unexpected rows or columns: {error}"),
    }
}

/// A stored number that must fit `u64` (versions, bucket numbers).
pub(super) fn unsigned(value: i64, what: &str, stream_id: &str) -> Result<u64, PersistenceError> {
    u64::try_from(value).map_err(|_| PersistenceError::Corrupt {
        detail: format!(
            "Cassandra row of stream `{}` has a negative {what} ({value})",
            stream_id.escape_debug()
        ),
    })
}

/// A version or count that must fit CQL's `bigint`.
pub(super) fn signed(value: u64, what: &str) -> Result<i64, PersistenceError> {
    i64::try_from(value).map_err(|_| PersistenceError::InvalidBatch {
        stream_id: String::new(),
        reason: format!("{what} {value} does not fit a 64-bit signed integer"),
    })
}
