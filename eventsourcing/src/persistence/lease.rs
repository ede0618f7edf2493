//! Leases: which instance of a follower may commit what, when several instances in different
//! processes share one upstream (competing consumers, `system::Competing`).
//!
//! A lease is a named row in the downstream store with an owner, an epoch and an expiry. It is
//! taken when free, released or expired, and renewed by its holder; each change of holder
//! raises the epoch. A commit that carries a lease in its [`Tracking`](super::Tracking)
//! record ([`Tracking::fenced`](super::Tracking::fenced)) is written only if that lease is
//! still held, at that epoch and unexpired, checked inside the append's transaction: an
//! instance that was paused past its lease's expiry cannot commit when it resumes
//! ([`PersistenceError::Fenced`]).
//!
//! Expiry is judged by one clock for all instances: the database server's on PostgreSQL
//! (instances on several machines need not agree on the time), the machine's on SQLite (whose
//! processes share one machine) and in memory.

use std::time::Duration;

use super::error::PersistenceError;

/// A lease held: what [`LeaseRecorder::acquire_lease`] hands out and a fenced commit carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The lease's name (e.g. `"<follower>/partition/3"`).
    pub name: String,
    /// Who holds it: unique per process (see `system::Competing::owner`).
    pub owner: String,
    /// Raised each time the lease changes hands (from 1).
    pub epoch: u64,
}

/// A lease as stored, for listings and status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The lease's name.
    pub name: String,
    /// The last holder.
    pub owner: String,
    /// The epoch of the last holder.
    pub epoch: u64,
    /// How long it stays held unless renewed; `None` when it expired or was released.
    pub expires_in: Option<Duration>,
}

impl LeaseState {
    /// Whether someone holds the lease now.
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.expires_in.is_some()
    }
}

/// Keeps leases in a store, beside the events whose commits they fence.
///
/// Contract (the conformance kit checks it):
/// - [`acquire_lease`](Self::acquire_lease) takes a lease that is new, released or expired
///   (raising its epoch, 1 for a new one) and renews one that `owner` holds (same epoch); it
///   returns `None`, changing nothing, while another owner holds it;
/// - [`renew_lease`](Self::renew_lease) extends a lease held at its epoch and unexpired;
/// - [`release_lease`](Self::release_lease) ends a lease held at its epoch at once;
/// - [`remove_lease`](Self::remove_lease) deletes a lease no longer held, at its epoch;
/// - an append whose tracking record carries a lease fails with
///   [`PersistenceError::Fenced`], writing nothing, unless the lease is held at that epoch and
///   unexpired when the append checks it, inside its transaction (a takeover waits for that
///   transaction to end, or the commit fails).
pub trait LeaseRecorder: Send + Sync {
    /// Takes `name` for `owner` for `ttl`, or renews it if `owner` holds it.
    ///
    /// # Errors
    /// Backend failures; an owner or name that is empty or too long.
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, PersistenceError>;

    /// Extends `lease` by `ttl` from now; `false` when it is not held any more.
    ///
    /// # Errors
    /// Backend failures.
    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, PersistenceError>;

    /// Ends `lease` now, if still held at its epoch (otherwise nothing changes).
    ///
    /// # Errors
    /// Backend failures.
    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError>;

    /// Deletes `lease`'s row if it is still at that owner and epoch and no longer held
    /// (released or expired); otherwise nothing changes. For leases whose epochs need not
    /// keep increasing (the member leases of instances that left).
    ///
    /// # Errors
    /// Backend failures.
    fn remove_lease(&self, lease: &Lease) -> Result<(), PersistenceError>;

    /// Every lease whose name starts with `prefix`, by name.
    ///
    /// # Errors
    /// Backend failures or corrupt rows.
    fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseState>, PersistenceError>;
}

/// Checks a lease name and owner before any I/O.
///
/// # Errors
/// [`PersistenceError::Config`] for an empty value, a NUL or more than
/// [`MAX_IDENTIFIER_BYTES`](super::MAX_IDENTIFIER_BYTES) bytes.
pub fn validate_lease(name: &str, owner: &str) -> Result<(), PersistenceError> {
    for (what, value) in [("lease name", name), ("lease owner", owner)] {
        if value.is_empty() || value.contains('\0') || value.len() > super::MAX_IDENTIFIER_BYTES {
            return Err(PersistenceError::Config(format!(
                "the {what} {value:?} must be 1 to {} bytes without NUL",
                super::MAX_IDENTIFIER_BYTES
            )));
        }
    }
    Ok(())
}

/// The error of a fenced commit.
#[must_use]
pub fn fenced(lease: &Lease) -> PersistenceError {
    PersistenceError::Fenced {
        lease: lease.name.clone(),
        owner: lease.owner.clone(),
        epoch: lease.epoch,
    }
}

/// Microseconds since the Unix epoch by this machine's clock (SQLite and memory leases).
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A time to live in microseconds, at most about ten years (so that now plus it fits a
/// 64-bit count of microseconds on every backend).
pub(crate) fn ttl_micros(ttl: Duration) -> i64 {
    const MAX: i64 = 10 * 366 * 24 * 3600 * 1_000_000;
    i64::try_from(ttl.as_micros()).map_or(MAX, |micros| micros.min(MAX))
}

/// What is left of a lease expiring at `expires_at` (µs), seen at `now` (µs).
pub(crate) fn remaining(expires_at: i64, now: i64) -> Option<Duration> {
    let left = expires_at.checked_sub(now)?;
    (left > 0).then(|| Duration::from_micros(left.unsigned_abs()))
}
