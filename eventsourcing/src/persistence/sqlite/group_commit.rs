//! Group commit: concurrent appends on one SQLite store share one transaction and so one
//! `fsync`, while each stays atomic and checked on its own.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` each commit costs an
//! `fsync`. An appender takes the writer connection; if no group transaction is open it begins
//! one (`BEGIN IMMEDIATE`). It runs its whole append inside a `SAVEPOINT`: a conflict or any
//! other error rolls back to the savepoint (its own rows only) and is returned at once, so a
//! failing append never touches the others. A successful one joins the group. Then, if no
//! other appender is waiting for the connection (or the group is full), it commits the group
//! and tells every member the outcome; otherwise it releases the connection and waits, and
//! the next appender does its work in the same transaction. Every member is acknowledged only
//! after the commit that holds its rows has returned, and a failed commit fails every member
//! (nothing of the group is stored). A member that has waited too long commits the group
//! itself, so no group is left open. Anything else that needs the writer (snapshots, deletes,
//! updates, the reads of an in-memory database) commits an open group first.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use super::error::from_sqlite;
use crate::persistence::PersistenceError;

/// Members of one group at most, so that a group's commit waits for a bounded amount of work.
const MAX_MEMBERS: usize = 64;

/// How long a member waits before it commits its group itself (a safety net: the last member
/// normally commits at once).
const HELP_AFTER: Duration = Duration::from_millis(50);

/// The writer connection and the group transaction open on it, if any.
#[derive(Debug)]
pub(super) struct WriterState {
    pub(super) conn: Connection,
    group: Option<Group>,
    next_epoch: u64,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    epoch: u64,
    members: usize,
}

/// A failed commit, kept until every member has read it.
#[derive(Debug)]
struct Failure {
    epoch: u64,
    code: rusqlite::ffi::Error,
    message: Option<String>,
    unread: usize,
}

/// The outcomes of finished groups.
#[derive(Debug, Default)]
struct Outcomes {
    /// Every group up to this epoch has finished (committed or failed).
    finished: u64,
    failures: VecDeque<Failure>,
}

/// The writer connection shared by appenders that commit in groups.
#[derive(Debug)]
pub(super) struct GroupWriter {
    state: Mutex<WriterState>,
    /// Appenders waiting for `state`: while there are some, a member leaves the commit to them.
    arriving: AtomicUsize,
    outcomes: Mutex<Outcomes>,
    finished: Condvar,
    commits: AtomicU64,
}

impl GroupWriter {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            state: Mutex::new(WriterState {
                conn,
                group: None,
                next_epoch: 1,
            }),
            arriving: AtomicUsize::new(0),
            outcomes: Mutex::new(Outcomes::default()),
            finished: Condvar::new(),
            commits: AtomicU64::new(0),
        }
    }

    /// Group transactions committed so far (each one `fsync` with `synchronous = FULL`).
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        // A panic while the state was held left no half-done append inside the group: the
        // panicking append rolled back to its savepoint first (see `append`).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer connection for work outside the groups, with no group open (an open one is
    /// committed first, and its members told).
    pub(super) fn exclusive(&self) -> MutexGuard<'_, WriterState> {
        let mut state = self.lock_state();
        self.finish_group(&mut state);
        state
    }

    /// Runs `work` as one append in the group transaction and returns its value once the
    /// group has committed: `work`'s error (its rows rolled back, the group untouched), or the
    /// commit's.
    pub(super) fn append<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
    ) -> Result<T, PersistenceError> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock_state();
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        let group = match state.group {
            Some(group) => group,
            None => begin(&mut state)?,
        };
        let result = match catch_unwind(AssertUnwindSafe(|| in_savepoint(&state.conn, work))) {
            // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction
            // back: the group is lost, and its members are told at once. (Had this append
            // succeeded outside a transaction, its `RELEASE` committed it: `Ok` is true.)
            Ok(result) if state.conn.is_autocommit() => {
                self.finish_group(&mut state);
                drop(state);
                return result;
            }
            Ok(result) => result,
            Err(panic) => {
                // Its savepoint is still open: undo it, then let the group go on without it.
                let _ = state
                    .conn
                    .execute_batch("ROLLBACK TO append; RELEASE append");
                self.settle(&mut state);
                drop(state);
                resume_unwind(panic)
            }
        };
        if result.is_ok() {
            if let Some(open) = state.group.as_mut() {
                open.members += 1;
            }
        }
        let committed_here = self.settle(&mut state);
        drop(state);
        let value = match result {
            Ok(value) => value,
            Err(error) => {
                // A conflict may come from rows of this group, not yet committed: report it
                // once they are, so that the caller's next read sees what it conflicted with
                // (a retry would otherwise read the old state and conflict again).
                if !committed_here && error.is_conflict() {
                    self.wait_finished(group.epoch);
                }
                return Err(error);
            }
        };
        if !committed_here {
            self.wait_finished(group.epoch);
        }
        self.outcome_of(group.epoch)?;
        Ok(value)
    }

    /// Commits the open group when no appender waits to join it or it is full; whether it
    /// did.
    fn settle(&self, state: &mut WriterState) -> bool {
        let full = state.group.is_some_and(|g| g.members >= MAX_MEMBERS);
        if full || self.arriving.load(Ordering::SeqCst) == 0 {
            self.finish_group(state);
            return true;
        }
        false
    }

    /// Commits the open group (or rolls it back when it has no member) and publishes the
    /// outcome to its members.
    fn finish_group(&self, state: &mut WriterState) {
        let Some(group) = state.group.take() else {
            return;
        };
        let failure = if group.members == 0 {
            if !state.conn.is_autocommit() {
                let _ = state.conn.execute_batch("ROLLBACK");
            }
            None
        } else if state.conn.is_autocommit() {
            // SQLite rolled the transaction back by itself (a full disk, an I/O error).
            let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT);
            let message = "SQLite rolled back the group transaction".to_owned();
            Some(failure_of(
                group,
                rusqlite::Error::SqliteFailure(code, Some(message)),
            ))
        } else {
            match state.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(error) => {
                    // Nothing of the group is stored: roll back what the failed commit left.
                    if !state.conn.is_autocommit() {
                        let _ = state.conn.execute_batch("ROLLBACK");
                    }
                    Some(failure_of(group, error))
                }
            }
        };
        let mut outcomes = self.lock_outcomes();
        outcomes.finished = outcomes.finished.max(group.epoch);
        outcomes.failures.extend(failure);
        drop(outcomes);
        self.finished.notify_all();
    }

    fn lock_outcomes(&self) -> MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until group `epoch` has finished, committing it here if it stays open too long.
    fn wait_finished(&self, epoch: u64) {
        let mut outcomes = self.lock_outcomes();
        while outcomes.finished < epoch {
            let (guard, timeout) = self
                .finished
                .wait_timeout(outcomes, HELP_AFTER)
                .unwrap_or_else(PoisonError::into_inner);
            outcomes = guard;
            if timeout.timed_out() && outcomes.finished < epoch {
                drop(outcomes);
                let mut state = self.lock_state();
                if state.group.is_some_and(|g| g.epoch == epoch) {
                    self.finish_group(&mut state);
                }
                drop(state);
                outcomes = self.lock_outcomes();
            }
        }
    }

    /// The outcome of finished group `epoch`, for one of its members.
    fn outcome_of(&self, epoch: u64) -> Result<(), PersistenceError> {
        let mut outcomes = self.lock_outcomes();
        let Some(index) = outcomes.failures.iter().position(|f| f.epoch == epoch) else {
            return Ok(());
        };
        let failure = &mut outcomes.failures[index];
        let error = rusqlite::Error::SqliteFailure(failure.code, failure.message.clone());
        failure.unread -= 1;
        if failure.unread == 0 {
            outcomes.failures.remove(index);
        }
        Err(from_sqlite(error))
    }
}

/// Opens a group transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so the
/// version checks of every member run under it.
fn begin(state: &mut WriterState) -> Result<Group, PersistenceError> {
    if !state.conn.is_autocommit() {
        // Left by a panic outside any append: nothing in it was acknowledged.
        state.conn.execute_batch("ROLLBACK").map_err(from_sqlite)?;
    }
    state
        .conn
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(from_sqlite)?;
    let group = Group {
        epoch: state.next_epoch,
        members: 0,
    };
    state.next_epoch += 1;
    state.group = Some(group);
    Ok(group)
}

/// Runs `work` in a savepoint: released when it succeeds, rolled back to when it fails.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, PersistenceError>,
) -> Result<T, PersistenceError> {
    // Cached statements: these two run for every append.
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map_err(from_sqlite)
    };
    run("SAVEPOINT append")?;
    let result = work(conn).and_then(|value| run("RELEASE append").map(|_| value));
    if result.is_err() {
        // Undo this append's rows only; the group's other members keep theirs.
        let _ = conn.execute_batch("ROLLBACK TO append; RELEASE append");
    }
    result
}

fn failure_of(group: Group, error: rusqlite::Error) -> Failure {
    let (code, message) = match error {
        rusqlite::Error::SqliteFailure(code, message) => (code, message),
        other => (
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    Failure {
        epoch: group.epoch,
        code,
        message,
        unread: group.members,
    }
}
