//! Following a log by position: the upstream a follower reads ([`Upstream`], each event a
//! [`Notification`]), the [`Follower`] contract that process applications and projections
//! implement, catching up page by page, and [`Runner`]s that drive followers.

mod runner;
mod serve;
mod upstream;

pub use runner::{Runner, RunnerHandle, RunnerWaker};
pub use serve::{Serve, ServeStopper};
pub use upstream::{Notification, Upstream};

use super::error::SystemError;

/// The default number of upstream events read per page.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Something that follows an upstream log by position: a process application or a projector.
///
/// Object safe, so a [`Runner`] can hold different kinds together.
pub trait Follower: Send {
    /// The follower's name, in errors and reports.
    fn name(&self) -> &str;

    /// The last upstream position committed (0 when none).
    ///
    /// # Errors
    /// Store failures.
    fn position(&self) -> Result<u64, SystemError>;

    /// Processes one page after the committed position; returns how many upstream events
    /// were read (0 when caught up).
    ///
    /// # Errors
    /// The first failure; the events before it stay committed.
    fn pull(&mut self) -> Result<usize, SystemError>;

    /// Gives up what this follower holds for other instances (a competing process
    /// application's leases) at a graceful stop. Nothing by default.
    ///
    /// # Errors
    /// Store failures (leases then expire on their own).
    fn release(&mut self) -> Result<(), SystemError> {
        Ok(())
    }

    /// What a status report shows of this follower. By default its name and position.
    fn status(&self) -> FollowerStatus {
        FollowerStatus {
            name: self.name().to_owned(),
            position: self.position().ok(),
            lag: None,
            partitions: Vec::new(),
            members: 0,
            fenced: 0,
            parked: None,
        }
    }

    /// Pulls until a pull reads nothing; returns the total read.
    ///
    /// # Errors
    /// As [`Follower::pull`].
    fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        let mut total = 0u64;
        loop {
            match self.pull()? {
                0 => return Ok(total),
                read => total += read as u64,
            }
        }
    }
}

impl<F: Follower + ?Sized> Follower for Box<F> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn position(&self) -> Result<u64, SystemError> {
        (**self).position()
    }
    fn pull(&mut self) -> Result<usize, SystemError> {
        (**self).pull()
    }
    fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        (**self).run_until_caught_up()
    }
    fn release(&mut self) -> Result<(), SystemError> {
        (**self).release()
    }
    fn status(&self) -> FollowerStatus {
        (**self).status()
    }
}

/// One follower in a status report ([`Runner::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower's name.
    pub name: String,
    /// Its committed position (`None` when the store could not be read).
    pub position: Option<u64>,
    /// How far behind the upstream's last position it is (`None` when not known). For a
    /// competing instance, behind what it has scanned for its own partitions.
    pub lag: Option<u64>,
    /// Competing: the partitions this instance leases, with each one's tracked position.
    pub partitions: Vec<(u32, u64)>,
    /// Competing: the live instances seen at the last heartbeat (0 otherwise).
    pub members: usize,
    /// Competing: commits refused since start because the lease had expired or moved.
    pub fenced: u64,
    /// How many parked events are open (`None` when not known).
    pub parked: Option<usize>,
}

impl std::fmt::Display for FollowerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: position ", self.name)?;
        match self.position {
            Some(position) => write!(f, "{position}")?,
            None => f.write_str("unknown")?,
        }
        if let Some(lag) = self.lag {
            write!(f, ", lag {lag}")?;
        }
        if self.members > 0 {
            let held: Vec<String> = self
                .partitions
                .iter()
                .map(|(p, at)| format!("{p}@{at}"))
                .collect();
            write!(
                f,
                ", {} instance(s), partitions held [{}], {} fenced",
                self.members,
                held.join(" "),
                self.fenced
            )?;
        }
        if let Some(parked) = self.parked {
            write!(f, ", {parked} parked")?;
        }
        Ok(())
    }
}

/// Pulls pages until one is short; returns the total read.
pub(super) fn catch_up(
    page_size: usize,
    mut pull: impl FnMut() -> Result<usize, SystemError>,
) -> Result<u64, SystemError> {
    let mut total = 0u64;
    loop {
        let read = pull()?;
        total += read as u64;
        if read < page_size {
            return Ok(total);
        }
    }
}
