//! Classification of driver errors into [`PersistenceError`] variants, by SQLSTATE and error
//! kind, never by message text.

use postgres::error::SqlState;

use crate::persistence::PersistenceError;

pub(super) const BACKEND: &str = "PostgreSQL";

/// The driver's error, displayed with the server's own words: the driver's `Display` says only
/// "db error" and keeps the message in its source.
#[derive(Debug)]
struct DriverError(postgres::Error);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(
                f,
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            )?;
            if let Some(detail) = db.detail() {
                write!(f, "; {detail}")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.0)?;
        if let Some(source) = std::error::Error::source(&self.0) {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Maps a driver error to the persistence error a caller can act on.
pub(super) fn classify(error: postgres::Error) -> PersistenceError {
    let Some(code) = error.code().cloned() else {
        // No SQLSTATE: the connection is closed or broken, or the I/O failed.
        return PersistenceError::Unavailable {
            backend: BACKEND,
            source: Box::new(DriverError(error)),
        };
    };
    let source = Box::new(DriverError(error));
    let class = code.code().get(..2).unwrap_or_default();
    if code == SqlState::QUERY_CANCELED
        || code == SqlState::LOCK_NOT_AVAILABLE
        || code == SqlState::T_R_SERIALIZATION_FAILURE
        || code == SqlState::T_R_DEADLOCK_DETECTED
        || code == SqlState::TOO_MANY_CONNECTIONS
        || code == SqlState::OUT_OF_MEMORY
        || code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
    {
        PersistenceError::Busy {
            backend: BACKEND,
            source,
        }
    } else if code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE {
        // The only arithmetic of the recorder's statements is on positions.
        PersistenceError::PositionOverflow {
            backend: BACKEND,
            source,
        }
    } else if code == SqlState::DISK_FULL || code == SqlState::INSUFFICIENT_RESOURCES {
        PersistenceError::StorageFull {
            backend: BACKEND,
            source,
        }
    } else if code == SqlState::READ_ONLY_SQL_TRANSACTION
        // A hot standby refuses writes so; a role that may only read gets "permission denied".
        || code == SqlState::INSUFFICIENT_PRIVILEGE
    {
        PersistenceError::ReadOnly {
            backend: BACKEND,
            source,
        }
    } else if class == "08" // connection exception
        || class == "57" // operator intervention: admin shutdown, crash shutdown, cannot connect now
        || class == "58"
    // system error (I/O)
    {
        PersistenceError::Unavailable {
            backend: BACKEND,
            source,
        }
    } else {
        PersistenceError::Backend {
            backend: BACKEND,
            source,
        }
    }
}

/// Whether the error is a unique violation of the named constraint or index.
pub(super) fn is_unique_violation(error: &postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// A pool error: no connection could be had within the connect timeout.
pub(super) fn pool(error: r2d2::Error) -> PersistenceError {
    PersistenceError::Unavailable {
        backend: BACKEND,
        source: Box::new(error),
    }
}
