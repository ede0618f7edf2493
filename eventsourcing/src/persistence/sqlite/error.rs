//! Mapping rusqlite errors to [`PersistenceError`], by error code only (never by message).

use rusqlite::ffi;
use rusqlite::ErrorCode;

use crate::persistence::PersistenceError;

/// The backend name used in errors.
pub(super) const BACKEND: &str = "SQLite";

/// Maps a rusqlite error to the persistence error it means: busy or locked, full, read-only,
/// cannot open, corrupt, a column of the wrong type; anything else is a backend failure.
pub(super) fn from_sqlite(error: rusqlite::Error) -> PersistenceError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => PersistenceError::Busy {
            backend: BACKEND,
            source: Box::new(error),
        },
        Some(ErrorCode::DiskFull) => PersistenceError::StorageFull {
            backend: BACKEND,
            source: Box::new(error),
        },
        Some(ErrorCode::ReadOnly) => PersistenceError::ReadOnly {
            backend: BACKEND,
            source: Box::new(error),
        },
        Some(ErrorCode::CannotOpen) => PersistenceError::Unavailable {
            backend: BACKEND,
            source: Box::new(error),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => PersistenceError::Corrupt {
            detail: format!("the SQLite database is damaged or not a database: {error}"),
        },
        _ => match error {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => PersistenceError::Corrupt {
                detail: format!("unreadable SQLite value: {error}"),
            },
            other => PersistenceError::Backend {
                backend: BACKEND,
                source: Box::new(other),
            },
        },
    }
}

/// True for a violated UNIQUE or PRIMARY KEY constraint, judged by the extended error code.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
        && matches!(
            error.sqlite_extended_error_code(),
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        )
}

/// A corrupt-row error naming the table, the row and what is wrong.
pub(super) fn corrupt_row(
    table: &str,
    row: &str,
    what: impl std::fmt::Display,
) -> PersistenceError {
    PersistenceError::Corrupt {
        detail: format!("{table} row {row}: {what}"),
    }
}
