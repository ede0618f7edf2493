//! Group commit: concurrent appends on one SQLite store share one transaction and so one
//! `fsync`, while each stays atomic and checked on its own.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` each commit costs an
//! `fsync`. An appender that finds no leader becomes the leader: it takes the writer
//! connection, begins a transaction (`BEGIN IMMEDIATE`), runs its own append, then the appends
//! that queued up meanwhile (other threads hand theirs over as owned copies and wait), each in
//! its own `SAVEPOINT`, commits them all at once and hands every member its outcome. A
//! conflict or any other error rolls back to that member's savepoint (its own rows only) and
//! is its outcome; the others are untouched. Every outcome, errors included, is handed over
//! only after the commit that holds the group has returned (so a conflict is reported once
//! what it conflicted with is committed), and a failed commit fails every member whose append
//! had succeeded (nothing of the group is stored). Appends arriving during a commit wait for
//! it; when it ends, one of them leads the next group. So a group costs one hand-over between
//! threads, not one per member: the leader runs the members' work itself.
//!
//! A group that does not commit (its `BEGIN` or `COMMIT` fails, or SQLite rolls it back by
//! itself) fails with that error every member that succeeded and every member whose error may
//! come from an earlier member's rows (a conflict found against rows that are gone is not
//! true); a failed `BEGIN` fails every member taken into the group.
//!
//! Anything else that needs the writer (snapshots, deletes, updates, the reads of an in-memory
//! database) takes the connection between groups: no group stays open outside its leader.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use super::error::from_sqlite;
use super::rows::EncodedEvent;
use crate::persistence::{PersistenceError, StreamAppend, Tracking};

/// Members of one group at most, so that a group's commit waits for a bounded amount of work.
const MAX_MEMBERS: usize = 64;

/// One append's outcome: its positions, or its error.
pub(super) type Outcome = Result<Vec<u64>, PersistenceError>;

/// One append as the writer runs it: the batch, its events' columns encoded beforehand (by
/// the appender's own thread, outside the group), and the tracking record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member<'a> {
    pub(super) batch: &'a [StreamAppend],
    pub(super) encoded: &'a [Vec<EncodedEvent>],
    pub(super) tracking: Option<&'a Tracking>,
}

/// What runs one append on the writer connection: the recorder's checks and inserts, the same
/// for every member of a group (the leader runs them all).
pub(super) type Run<'a> = &'a (dyn Fn(&Connection, Member<'_>) -> Outcome + Sync);

/// The writer connection.
#[derive(Debug)]
pub(super) struct WriterState {
    pub(super) conn: Connection,
}

/// An append handed to the leader: owned copies, since its thread waits elsewhere.
#[derive(Debug)]
struct Job {
    id: u64,
    batch: Vec<StreamAppend>,
    encoded: Vec<Vec<EncodedEvent>>,
    tracking: Option<Tracking>,
}

impl Job {
    fn member(&self) -> Member<'_> {
        Member {
            batch: &self.batch,
            encoded: &self.encoded,
            tracking: self.tracking.as_ref(),
        }
    }
}

/// What a member's thread is handed once its group has finished.
enum Delivered {
    Done(Outcome),
    /// Its append panicked in the leader's thread: the panic goes on in its own.
    Panicked(Box<dyn Any + Send>),
}

impl Delivered {
    /// The outcome, in the member's own thread: a panic in its append goes on here.
    fn into_outcome(self) -> Outcome {
        match self {
            Self::Done(outcome) => outcome,
            Self::Panicked(panic) => resume_unwind(panic),
        }
    }
}

/// Appends waiting for a leader, and the outcomes not yet collected.
#[derive(Default)]
struct Queue {
    /// A leader is running a group; new appends queue up for the next one.
    leading: bool,
    next_id: u64,
    pending: VecDeque<Job>,
    delivered: HashMap<u64, Delivered>,
}

/// The writer connection shared by appenders that commit in groups.
pub(super) struct GroupWriter {
    state: Mutex<WriterState>,
    queue: Mutex<Queue>,
    /// Signalled when a group has finished: outcomes are ready, and the lead is free.
    finished: Condvar,
    commits: AtomicU64,
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl GroupWriter {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            state: Mutex::new(WriterState { conn }),
            queue: Mutex::new(Queue::default()),
            finished: Condvar::new(),
            commits: AtomicU64::new(0),
        }
    }

    /// Group transactions committed so far (each one `fsync` with `synchronous = FULL`).
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        // A panic while the state was held left no half-done append inside a group: every
        // member runs under `catch_unwind` and a panicking one is rolled back to its savepoint.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer connection for work outside the groups (none is open between leaders).
    pub(super) fn exclusive(&self) -> MutexGuard<'_, WriterState> {
        self.lock_state()
    }

    /// Runs `run` for this append in a group transaction and returns its outcome once the
    /// group has committed: `run`'s error (its rows rolled back, the group untouched), or the
    /// commit's.
    pub(super) fn append(&self, own: Member<'_>, run: Run<'_>) -> Outcome {
        let mut queue = self.lock_queue();
        if !queue.leading {
            queue.leading = true;
            drop(queue);
            return match self.lead(Some(own), run) {
                Some(delivered) => delivered.into_outcome(),
                None => unreachable!("a leader with its own append gets its outcome"),
            };
        }
        // A group is running: queue a copy for the next one, and wait.
        let id = queue.next_id;
        queue.next_id += 1;
        queue.pending.push_back(Job {
            id,
            batch: own.batch.to_vec(),
            encoded: own.encoded.to_vec(),
            tracking: own.tracking.cloned(),
        });
        loop {
            // Checked before every wait: a group may have finished, or the lead become free,
            // since this thread last looked.
            if let Some(delivered) = queue.delivered.remove(&id) {
                return delivered.into_outcome();
            }
            if queue.leading {
                queue = self
                    .finished
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            } else {
                // The last group has finished and ours still waits: lead the next one.
                queue.leading = true;
                drop(queue);
                let _ = self.lead(None, run);
                queue = self.lock_queue();
            }
        }
    }

    /// Runs one group: `own` (the leader's append, borrowed) and the queued appends, commits,
    /// hands the queued members their outcomes and gives up the lead; the leader's own
    /// outcome.
    fn lead(&self, own: Option<Member<'_>>, run: Run<'_>) -> Option<Delivered> {
        // Hands the lead back even if this thread panics outside a member (a bug), so that
        // the appends queued behind it are not left waiting for ever.
        let mut handover = Handover {
            writer: self,
            ids: Vec::new(),
            done: false,
        };
        let state = self.lock_state();
        let mut members: Vec<(Option<u64>, Delivered)> = Vec::new();
        let mut open = begin(&state.conn);
        if let Some(own) = own {
            let delivered = match &open {
                Ok(()) => member(&state.conn, own, run),
                Err(failure) => Delivered::Done(Err(failure.error())),
            };
            members.push((None, delivered));
        }
        // Appends queued meanwhile, and those arriving while these run, up to a full group.
        while members.len() < MAX_MEMBERS {
            let jobs: Vec<Job> = {
                let mut queue = self.lock_queue();
                let take = queue.pending.len().min(MAX_MEMBERS - members.len());
                queue.pending.drain(..take).collect()
            };
            if jobs.is_empty() {
                break;
            }
            handover.ids.extend(jobs.iter().map(|job| job.id));
            for job in jobs {
                if open.is_ok() && state.conn.is_autocommit() {
                    // SQLite rolled the group back by itself (a full disk, an I/O error): the
                    // members so far are lost; the rest go on in a new transaction.
                    lose_group(&mut members);
                    open = begin(&state.conn);
                }
                let delivered = match &open {
                    Ok(()) => member(&state.conn, job.member(), run),
                    Err(failure) => Delivered::Done(Err(failure.error())),
                };
                members.push((Some(job.id), delivered));
            }
        }
        if open.is_ok() {
            self.commit(&state.conn, &mut members);
        }
        drop(state);
        // Hand over the outcomes and the lead together: a woken appender either finds its
        // outcome or leads the next group.
        let mut own_outcome = None;
        let mut queue = self.lock_queue();
        for (id, delivered) in members {
            match id {
                Some(id) => {
                    queue.delivered.insert(id, delivered);
                }
                None => own_outcome = Some(delivered),
            }
        }
        queue.leading = false;
        handover.done = true;
        drop(queue);
        self.finished.notify_all();
        own_outcome
    }

    /// Commits the open group (or rolls it back when no member succeeded); a failed commit
    /// fails every member that had succeeded.
    fn commit(&self, conn: &Connection, members: &mut [(Option<u64>, Delivered)]) {
        let succeeded = members
            .iter()
            .any(|(_, d)| matches!(d, Delivered::Done(Ok(_))));
        if conn.is_autocommit() {
            // SQLite rolled the group back by itself after its last member.
            lose_group(members);
            return;
        }
        if !succeeded {
            let _ = conn.execute_batch("ROLLBACK");
            return;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                // Nothing of the group is stored: roll back what the failed commit left.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                fail_all(members, &Failure::from(error));
            }
        }
    }
}

/// Gives up the lead if the leader panics outside a member (a bug) before handing the
/// outcomes over: the members it had taken (`ids`) get an error instead of waiting for ever.
struct Handover<'a> {
    writer: &'a GroupWriter,
    ids: Vec<u64>,
    /// The outcomes and the lead were handed over: nothing left to do.
    done: bool,
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Nothing of the group was acknowledged: undo it before anyone else uses the writer.
        let state = self.writer.lock_state();
        if !state.conn.is_autocommit() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        drop(state);
        let mut queue = self.writer.lock_queue();
        for id in self.ids.drain(..) {
            queue.delivered.entry(id).or_insert_with(|| {
                Delivered::Done(Err(PersistenceError::Backend {
                    backend: "sqlite",
                    source: "the group committer panicked before this append committed; \
                             nothing of it is stored"
                        .into(),
                }))
            });
        }
        queue.leading = false;
        drop(queue);
        self.writer.finished.notify_all();
    }
}

/// Opens a group transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so the
/// version checks of every member run under it.
fn begin(conn: &Connection) -> Result<(), Failure> {
    if !conn.is_autocommit() {
        // Left by a panic outside any append: nothing in it was acknowledged.
        conn.execute_batch("ROLLBACK")?;
    }
    Ok(conn.execute_batch("BEGIN IMMEDIATE")?)
}

/// Runs one member's append in a savepoint of the group, catching a panic (its savepoint is
/// rolled back, and the panic is handed to its thread).
fn member(conn: &Connection, append: Member<'_>, run: Run<'_>) -> Delivered {
    match catch_unwind(AssertUnwindSafe(|| in_savepoint(conn, |c| run(c, append)))) {
        Ok(outcome) => Delivered::Done(outcome),
        Err(panic) => {
            let _ = conn.execute_batch("ROLLBACK TO append; RELEASE append");
            Delivered::Panicked(panic)
        }
    }
}

/// The members of a group SQLite rolled back by itself: none is stored.
fn lose_group(members: &mut [(Option<u64>, Delivered)]) {
    let failure = Failure {
        code: rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        message: Some("SQLite rolled back the group transaction".to_owned()),
    };
    fail_all(members, &failure);
}

/// A group that did not commit fails every member that succeeded, and every member whose
/// error may have come from an earlier member's rows: a conflict, an "already tracked" or a
/// duplicate event id found against rows that are now gone is not true (and a follower told
/// "already tracked" would skip its work), while the failure's error makes it retry and find
/// out. Other errors (a full disk, an I/O error, bad input) stay the member's own.
fn fail_all(members: &mut [(Option<u64>, Delivered)], failure: &Failure) {
    for (_, delivered) in members.iter_mut() {
        if let Delivered::Done(outcome) = delivered {
            let from_group = match outcome {
                Ok(_) => true,
                Err(error) => matches!(
                    error,
                    PersistenceError::Conflict(_)
                        | PersistenceError::AlreadyTracked { .. }
                        | PersistenceError::InvalidBatch { .. }
                ),
            };
            if from_group {
                *outcome = Err(failure.error());
            }
        }
    }
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

/// A failure of the group's transaction (its begin or its commit), which every member it
/// concerns gets as its own error.
#[derive(Debug)]
struct Failure {
    code: rusqlite::ffi::Error,
    message: Option<String>,
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        match error {
            rusqlite::Error::SqliteFailure(code, message) => Self { code, message },
            other => Self {
                code: rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                message: Some(other.to_string()),
            },
        }
    }
}

impl Failure {
    fn error(&self) -> PersistenceError {
        from_sqlite(rusqlite::Error::SqliteFailure(
            self.code,
            self.message.clone(),
        ))
    }
}
