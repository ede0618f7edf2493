//! Leases of competing follower instances, in the `leases` table, judged by the server's
//! clock, and the fence check that a tracked append runs inside its transaction.

use std::time::Duration;

use postgres::Transaction;

use super::error::classify;
use super::rows::corrupt;
use super::PostgresRecorder;
use crate::persistence::lease::{remaining, ttl_micros};
use crate::persistence::{
    fenced, validate_lease, Lease, LeaseRecorder, LeaseState, PersistenceError,
};

fn epoch_i64(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

impl PostgresRecorder {
    /// Fails with [`PersistenceError::Fenced`] unless `lease` is held at its epoch; the row
    /// stays share-locked until the transaction ends, so a takeover waits for this commit.
    pub(super) fn check_fence(
        &self,
        tx: &mut Transaction<'_>,
        lease: &Lease,
    ) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        let held = tx
            .query_opt(&self.sql.lease_held, &[&lease.name, &lease.owner, &epoch])
            .map_err(classify)?;
        match held {
            Some(_) => Ok(()),
            None => Err(fenced(lease)),
        }
    }
}

impl PostgresRecorder {
    /// Runs a lease operation; in a store created before the leases table existed, creates
    /// it (one transaction, under an advisory lock) and runs the operation again.
    fn on_leases<T>(
        &self,
        operation: impl Fn(&mut super::pool::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, PersistenceError> {
        let mut conn = self.conn()?;
        match operation(&mut conn) {
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
                let mut tx = conn.client.transaction().map_err(classify)?;
                tx.batch_execute(&self.sql.create_leases)
                    .map_err(classify)?;
                tx.commit().map_err(classify)?;
                operation(&mut conn).map_err(classify)
            }
            other => other.map_err(classify),
        }
    }
}

impl LeaseRecorder for PostgresRecorder {
    fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, PersistenceError> {
        validate_lease(name, owner)?;
        let ttl = ttl_micros(ttl);
        let row = self
            .on_leases(|conn| conn.prepared_opt(&self.sql.acquire_lease, &[&name, &owner, &ttl]))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let epoch: i64 = row
            .try_get(0)
            .map_err(|e| corrupt(None, "lease epoch", e))?;
        Ok(Some(Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            epoch: u64::try_from(epoch).map_err(|e| corrupt(None, "lease epoch", e))?,
        }))
    }

    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, PersistenceError> {
        let (epoch, ttl) = (epoch_i64(lease.epoch), ttl_micros(ttl));
        self.on_leases(|conn| {
            conn.prepared_execute(
                &self.sql.renew_lease,
                &[&lease.name, &lease.owner, &epoch, &ttl],
            )
        })
        .map(|changed| changed == 1)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        self.conn()?
            .prepared_execute(
                &self.sql.release_lease,
                &[&lease.name, &lease.owner, &epoch],
            )
            .map(drop)
            .map_err(classify)
    }

    fn remove_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let epoch = epoch_i64(lease.epoch);
        self.on_leases(|conn| {
            conn.prepared_execute(&self.sql.remove_lease, &[&lease.name, &lease.owner, &epoch])
        })
        .map(drop)
    }

    fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseState>, PersistenceError> {
        let rows = self.on_leases(|conn| {
            let (client, statement) = conn.prepared(&self.sql.list_leases)?;
            client.query(&statement, &[&prefix])
        })?;
        rows.iter()
            .map(|row| {
                let bad = |what: &str, e: &dyn std::fmt::Display| corrupt(None, what, e);
                let name: String = row.try_get(0).map_err(|e| bad("lease name", &e))?;
                let owner: String = row.try_get(1).map_err(|e| bad("lease owner", &e))?;
                let epoch: i64 = row.try_get(2).map_err(|e| bad("lease epoch", &e))?;
                let left: i64 = row.try_get(3).map_err(|e| bad("lease expiry", &e))?;
                Ok(LeaseState {
                    name,
                    owner,
                    epoch: u64::try_from(epoch).map_err(|e| bad("lease epoch", &e))?,
                    expires_in: remaining(left, 0),
                })
            })
            .collect()
    }
}
