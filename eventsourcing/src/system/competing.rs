//! Competing consumers: several instances of one process application, in different OS
//! processes or on different machines, share one upstream.
//!
//! The upstream's streams are divided into a fixed number of partitions by a stable hash of
//! the stream id ([`partition_of`]). Each partition is a lease in the downstream store
//! ([`LeaseRecorder`]), held by one instance at a time, with its own tracking record
//! (`"<upstream>#<partition>/<count>"`), so:
//! - per-stream order is kept: a stream's events are all in one partition, processed in
//!   position order by its one holder, and a new holder resumes after the partition's last
//!   tracked position;
//! - exactly-once is kept: each partition's tracking record commits with its outputs;
//! - an instance whose lease expired or was taken over cannot commit (fencing): every commit
//!   carries the lease and the store refuses it unless the lease is still held at its epoch.
//!
//! Instances find each other through member leases (`"<follower>/member/<owner>"`), renewed
//! with the partition leases at each heartbeat. Partition `p` is assigned to the live member at
//! index `p % members` in owner order: when an instance joins, the others release what is now
//! its share (between events, after their commits); when one dies or hangs, its member lease
//! and partition leases expire and the others take its share over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::persistence::{Lease, LeaseRecorder, LeaseState, PersistenceError};

/// How instances of one process application share its upstream
/// ([`ProcessApplication::competing`](super::ProcessApplication::competing)).
///
/// ```
/// use std::time::Duration;
/// use eventsourcing::system::Competing;
///
/// let competing = Competing::new(16).lease_ttl(Duration::from_secs(5));
/// assert_eq!(competing.partitions(), 16);
/// assert!(competing.owner_id().len() > 8); // host, process and a random part
/// assert_eq!(competing.heartbeat_interval(), Duration::from_secs(5) / 3);
/// ```
#[derive(Debug, Clone)]
pub struct Competing {
    partitions: u32,
    owner: String,
    lease_ttl: Duration,
    heartbeat: Option<Duration>,
}

impl Competing {
    /// The upstream divided into `partitions` partitions (at least 1; fixed for the life of
    /// the follower: streams would change partition with another count, so a follower that
    /// finds leases of another count refuses to start). Leases last 10 s by default.
    #[must_use]
    pub fn new(partitions: u32) -> Self {
        Self {
            partitions: partitions.max(1),
            owner: default_owner(),
            lease_ttl: Duration::from_secs(10),
            heartbeat: None,
        }
    }

    /// How long a lease lasts without renewal: an instance that dies loses its partitions
    /// this long after its last heartbeat (at least 10 ms).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(10));
        self
    }

    /// How often leases are renewed and the partitions rebalanced (a third of the lease's
    /// time to live by default). Renewal happens inside [`Follower::pull`](super::Follower::pull):
    /// drive the follower at least this often ([`Runner::spawn`](super::Runner::spawn) with a
    /// poll interval below it).
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// This instance's owner id, in reports and (with a random part added per process
    /// application, `<id>~<8 hex digits>`) in its leases. By default the host name, the
    /// process id and a random part; two instances given the same id still never share a
    /// lease.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The number of partitions.
    #[must_use]
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// This instance's owner id.
    #[must_use]
    pub fn owner_id(&self) -> &str {
        &self.owner
    }

    /// The leases' time to live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The interval between heartbeats.
    #[must_use]
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat.unwrap_or(self.lease_ttl / 3)
    }
}

/// `<host>-<pid>-<8 hex digits>`.
fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// The partition of `stream_id` among `partitions`: FNV-1a (64 bits) of the id's UTF-8 bytes,
/// modulo the count. Part of the stored format (tracking records are per partition): it never
/// changes between versions, processes or platforms.
///
/// ```
/// use eventsourcing::system::partition_of;
/// assert_eq!(partition_of("order-1", 1), 0);
/// assert_eq!(partition_of("order-1", 16), partition_of("order-1", 16));
/// assert!(partition_of("order-1", 16) < 16);
/// ```
#[must_use]
pub fn partition_of(stream_id: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(partitions.max(1))).unwrap_or(0)
}

/// The tracking record name of one partition of `upstream`.
pub(crate) fn tracking_name(upstream: &str, partition: u32, partitions: u32) -> String {
    format!("{upstream}#{partition}/{partitions}")
}

/// One partition held by this instance.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) lease: Lease,
    /// The partition's tracking record name.
    pub(crate) tracking: String,
    /// The last position tracked for it (read when the lease was taken, then kept up to date
    /// by this instance's commits: nobody else commits for it while the lease is held).
    pub(crate) tracked: u64,
}

/// What one heartbeat changed.
#[derive(Debug, Default)]
pub(crate) struct Rebalance {
    /// Partitions taken, with their leases: not routable until [`Membership::hold`] records
    /// their tracked position (an instance that routed a partition before knowing where it
    /// stands would commit past its unprocessed events).
    pub(crate) taken: Vec<(u32, Lease)>,
    /// Partitions released or lost.
    pub(crate) dropped: Vec<u32>,
    /// A failure after some partitions were taken: those are still to be held.
    pub(crate) error: Option<PersistenceError>,
}

/// The leases of one instance of one follower.
#[derive(Debug)]
pub(crate) struct Membership {
    config: Competing,
    follower: String,
    /// The owner written into the leases: the configured owner id and a part random to this
    /// membership, so that two instances given one id (a cloned configuration, an id reused
    /// on another host) never share a lease, nor renew each other's.
    owner: String,
    member: Option<Lease>,
    pub(crate) held: BTreeMap<u32, Held>,
    next_heartbeat: Option<Instant>,
    /// The live members at the last heartbeat (their owner ids, without the random part).
    pub(crate) members: Vec<String>,
    /// How many commits were refused by fencing since this instance started.
    pub(crate) fenced: u64,
}

impl Membership {
    pub(crate) fn new(config: Competing, follower: &str) -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        Self {
            owner: format!("{}~{}", config.owner, &nonce[..8]),
            config,
            follower: follower.to_owned(),
            member: None,
            held: BTreeMap::new(),
            next_heartbeat: None,
            members: Vec::new(),
            fenced: 0,
        }
    }

    pub(crate) fn config(&self) -> &Competing {
        &self.config
    }

    fn member_prefix(&self) -> String {
        format!("{}/member/", self.follower)
    }

    fn partition_prefix(&self) -> String {
        format!("{}/partition/", self.follower)
    }

    /// `<follower>/partition/<count>/<p>`: the count is in the name, so that leases of
    /// another count are seen.
    fn partition_name(&self, partition: u32) -> String {
        format!(
            "{}{}/{partition}",
            self.partition_prefix(),
            self.config.partitions
        )
    }

    /// Whether a heartbeat is due.
    pub(crate) fn due(&self) -> bool {
        self.next_heartbeat.is_none_or(|at| Instant::now() >= at)
    }

    /// Renews this member's lease and the partitions held, drops those lost, releases those
    /// now assigned to another member and takes the free ones assigned to this one.
    pub(crate) fn heartbeat(
        &mut self,
        leases: &dyn LeaseRecorder,
    ) -> Result<Rebalance, PersistenceError> {
        let ttl = self.config.lease_ttl;
        let owner = self.owner.clone();
        self.next_heartbeat = Some(Instant::now() + self.config.heartbeat_interval());
        let member_name = format!("{}{owner}", self.member_prefix());
        self.member = leases.acquire_lease(&member_name, &owner, ttl)?;
        if self.member.is_none() {
            return Err(PersistenceError::Config(format!(
                "the member lease `{member_name}` of follower `{}` is held by someone else",
                self.follower
            )));
        }
        let listed = leases.list_leases(&format!("{}/", self.follower))?;
        self.check_partition_count(&listed)?;
        let prefix = self.member_prefix();
        // The rows of members that left without releasing (killed, crashed): removed once
        // expired, so that the listing does not grow with every instance ever started.
        for gone in listed
            .iter()
            .filter(|l| !l.is_held() && l.name.starts_with(&prefix) && l.owner != owner)
        {
            leases.remove_lease(&Lease {
                name: gone.name.clone(),
                owner: gone.owner.clone(),
                epoch: gone.epoch,
            })?;
        }
        let mut members: Vec<String> = listed
            .iter()
            .filter(|l| l.is_held())
            .filter_map(|l| l.name.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        if !members.contains(&owner) {
            members.push(owner.clone());
        }
        members.sort();
        let index = members.iter().position(|m| *m == owner).unwrap_or(0);
        let count = members.len();
        let assigned = |p: u32| usize::try_from(p).unwrap_or(0) % count == index;
        self.members = members
            .iter()
            .map(|m| {
                m.rsplit_once('~')
                    .map_or(m.as_str(), |(id, _)| id)
                    .to_owned()
            })
            .collect();

        let mut change = Rebalance::default();
        // Leases under this owner id that this instance does not know of (an earlier
        // instance that used the same id): released, so that they do not sit until expiry.
        let partition_prefix = self.partition_prefix();
        for stale in listed.iter().filter(|l| {
            l.is_held()
                && l.owner == owner
                && l.name.starts_with(&partition_prefix)
                && !self.held.values().any(|h| h.lease.name == l.name)
        }) {
            leases.release_lease(&Lease {
                name: stale.name.clone(),
                owner: owner.clone(),
                epoch: stale.epoch,
            })?;
        }
        let held: Vec<u32> = self.held.keys().copied().collect();
        for partition in held {
            let Some(entry) = self.held.get(&partition) else {
                continue;
            };
            let keep = if assigned(partition) {
                leases.renew_lease(&entry.lease, ttl)?
            } else {
                leases.release_lease(&entry.lease)?;
                false
            };
            if !keep {
                self.held.remove(&partition);
                change.dropped.push(partition);
            }
        }
        for partition in (0..self.config.partitions).filter(|p| assigned(*p)) {
            if self.held.contains_key(&partition) {
                continue;
            }
            match leases.acquire_lease(&self.partition_name(partition), &owner, ttl) {
                Ok(Some(lease)) => change.taken.push((partition, lease)),
                Ok(None) => {}
                Err(error) => {
                    change.error = Some(error);
                    break;
                }
            }
        }
        Ok(change)
    }

    /// Makes a taken partition routable, at its tracked position.
    pub(crate) fn hold(&mut self, partition: u32, lease: Lease, upstream: &str, tracked: u64) {
        let tracking = tracking_name(upstream, partition, self.config.partitions);
        self.held.insert(
            partition,
            Held {
                lease,
                tracking,
                tracked,
            },
        );
    }

    /// Runs the next heartbeat at the next pull (after a failure).
    pub(crate) fn retry_soon(&mut self) {
        self.next_heartbeat = None;
    }

    /// Refuses to run beside leases of another partition count.
    fn check_partition_count(&self, listed: &[LeaseState]) -> Result<(), PersistenceError> {
        let prefix = self.partition_prefix();
        let count = self.config.partitions.to_string();
        let other = listed.iter().find_map(|l| {
            let rest = l.name.strip_prefix(&prefix)?;
            let found = rest.split('/').next()?;
            (found != count).then(|| found.to_owned())
        });
        match other {
            Some(found) => Err(PersistenceError::Config(format!(
                "follower `{}` was partitioned into {found}, not {count}: streams would move \
                 between partitions and be processed again; keep the count (or give the \
                 follower a new name and a new downstream store)",
                self.follower
            ))),
            None => Ok(()),
        }
    }

    /// Forgets a partition whose commit was fenced: its lease is someone else's now.
    pub(crate) fn lost(&mut self, partition: u32) {
        self.fenced += 1;
        self.held.remove(&partition);
        // A lease lost is a sign of a pause or a partition of the network: the others may be
        // lost too, so look now rather than at the next heartbeat.
        self.next_heartbeat = None;
    }

    /// Releases every lease (graceful stop): the others take the partitions over at their
    /// next heartbeat instead of after the leases' expiry.
    pub(crate) fn release_all(
        &mut self,
        leases: &dyn LeaseRecorder,
    ) -> Result<(), PersistenceError> {
        let mut first_error = None;
        for (_, held) in std::mem::take(&mut self.held) {
            if let Err(e) = leases.release_lease(&held.lease) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(member) = self.member.take() {
            // A member's row goes with it: member epochs need not keep increasing.
            let gone = leases
                .release_lease(&member)
                .and_then(|()| leases.remove_lease(&member));
            if let Err(e) = gone {
                first_error.get_or_insert(e);
            }
        }
        self.next_heartbeat = None;
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_hash_is_fixed() {
        // Stored format: these values must never change.
        assert_eq!(partition_of("", 16), 5); // the offset basis 0xcbf29ce484222325 % 16
        assert_eq!(
            partition_of("a", 1000),
            (0xaf63_dc4c_8601_ec8c_u64 % 1000) as u32
        );
        let spread: std::collections::BTreeSet<u32> = (0..1000)
            .map(|i| partition_of(&format!("stream-{i}"), 8))
            .collect();
        assert_eq!(spread.len(), 8, "every partition gets streams");
        assert_eq!(partition_of("x", 0), 0, "a count of 0 is 1");
    }
}
