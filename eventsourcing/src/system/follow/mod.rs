//! Following a log by position: the upstream a follower reads ([`Upstream`], each event a
//! [`Notification`]), the [`Follower`] contract that process applications and projections
//! implement, catching up page by page, and [`Runner`]s that drive followers.

mod runner;
mod upstream;

pub use runner::{Runner, RunnerHandle, RunnerWaker};
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
