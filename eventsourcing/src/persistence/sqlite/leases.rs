//! Leases of competing follower instances, in the `leases` table, and the fence check that a
//! tracked append runs inside its transaction.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::error::from_sqlite;
use super::SqliteRecorder;
use crate::persistence::lease::{now_micros, remaining, ttl_micros};
use crate::persistence::{
    fenced, validate_lease, Lease, LeaseRecorder, LeaseState, PersistenceError,
};

impl SqliteRecorder {
    /// Fails with [`PersistenceError::Fenced`] unless `lease` is held at its epoch, read in
    /// the writer's transaction (so no takeover can commit in between).
    pub(super) fn check_fence(
        &self,
        tx: &Connection,
        lease: &Lease,
    ) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        let held = tx
            .prepare_cached(&self.sql.lease_held)
            .and_then(|mut s| s.exists(params![lease.name, lease.owner, epoch, now_micros()]))
            .map_err(from_sqlite)?;
        if held {
            Ok(())
        } else {
            Err(fenced(lease))
        }
    }
}

fn epoch_i64(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

fn corrupt(name: &str, what: &str) -> PersistenceError {
    PersistenceError::Corrupt {
        detail: format!("lease {name:?} has a negative {what}"),
    }
}

impl LeaseRecorder for SqliteRecorder {
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, PersistenceError> {
        validate_lease(name, owner)?;
        let now = now_micros();
        let expires = now.saturating_add(ttl_micros(ttl));
        let epoch: Option<i64> = self.write(|tx| {
            tx.prepare_cached(&self.sql.acquire_lease)
                .and_then(|mut s| {
                    s.query_row(params![name, owner, now, expires], |row| row.get(0))
                        .optional()
                })
                .map_err(from_sqlite)
        })?;
        epoch
            .map(|epoch| {
                Ok(Lease {
                    name: name.to_owned(),
                    owner: owner.to_owned(),
                    epoch: u64::try_from(epoch).map_err(|_| corrupt(name, "epoch"))?,
                })
            })
            .transpose()
    }

    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, PersistenceError> {
        let now = now_micros();
        let expires = now.saturating_add(ttl_micros(ttl));
        let epoch = epoch_i64(lease.epoch);
        self.write(|tx| {
            tx.prepare_cached(&self.sql.renew_lease)
                .and_then(|mut s| s.execute(params![lease.name, lease.owner, epoch, now, expires]))
                .map(|changed| changed == 1)
                .map_err(from_sqlite)
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        self.write(|tx| {
            tx.prepare_cached(&self.sql.release_lease)
                .and_then(|mut s| s.execute(params![lease.name, lease.owner, epoch]))
                .map(drop)
                .map_err(from_sqlite)
        })
    }

    fn remove_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        self.write(|tx| {
            tx.prepare_cached(&self.sql.remove_lease)
                .and_then(|mut s| s.execute(params![lease.name, lease.owner, epoch, now_micros()]))
                .map(drop)
                .map_err(from_sqlite)
        })
    }

    fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseState>, PersistenceError> {
        let now = now_micros();
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(&self.sql.list_leases)
                .map_err(from_sqlite)?;
            let rows = statement
                .query_map([prefix], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .map_err(from_sqlite)?;
            let mut leases = Vec::new();
            for row in rows {
                let (name, owner, epoch, expires_at) = row.map_err(from_sqlite)?;
                let epoch = u64::try_from(epoch).map_err(|_| corrupt(&name, "epoch"))?;
                leases.push(LeaseState {
                    name,
                    owner,
                    epoch,
                    expires_in: remaining(expires_at, now),
                });
            }
            Ok(leases)
        })
    }
}
