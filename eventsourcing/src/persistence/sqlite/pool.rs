//! Connections: the one writer (behind the group committer) and a small pool of read-only
//! connections, so that reads run beside the writer.

use std::sync::PoisonError;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::error::from_sqlite;
use super::group_commit::WriterState;
use super::SqliteRecorder;
use crate::persistence::PersistenceError;

/// The writer connection held for work outside the groups of appends.
pub(super) struct Writer<'a>(std::sync::MutexGuard<'a, WriterState>);

impl std::ops::Deref for Writer<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

/// Statements per connection kept compiled (the recorder runs 16 distinct ones).
pub(super) const STATEMENT_CACHE: usize = 32;

impl SqliteRecorder {
    /// The writer connection, with no group of appends open (an open one commits first).
    pub(super) fn lock_writer(&self) -> Writer<'_> {
        // A panic while the writer was held cannot leave a half-written transaction behind:
        // rusqlite rolls an unfinished transaction back when it drops, and `write` rolls back
        // any transaction still open before it begins a new one.
        Writer(self.writer.exclusive())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer, committing when it returns
    /// `Ok` and rolling back otherwise.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        let mut conn = self.lock_writer();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(from_sqlite)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(from_sqlite)?;
        let value = f(&tx)?;
        tx.commit().map_err(from_sqlite)?;
        Ok(value)
    }

    /// Runs `f` on a read connection (the writer for an in-memory database).
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        let Some(pool) = &self.readers else {
            return f(&self.lock_writer());
        };
        let idle = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = f(&conn);
        let mut idle = pool.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.config.max_idle_readers {
            idle.push(conn);
        }
        result
    }

    pub(super) fn open_reader(&self) -> Result<Connection, PersistenceError> {
        let conn = Connection::open_with_flags(
            &self.config.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(from_sqlite)?;
        conn.busy_timeout(self.config.busy_timeout)
            .map_err(from_sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "query_only", true)
            .map_err(from_sqlite)?;
        Ok(conn)
    }
}
