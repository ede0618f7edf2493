//! Followers (process applications, projectors) driven from async code.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::AsyncApplication;
use crate::system::{Follower, SystemError};

/// A [`Follower`] run on an [`AsyncApplication`]'s bounded blocking pool: each pull is one
/// blocking call. Cheap to clone: clones drive the same follower, one pull at a time.
///
/// Dropping a pull's future while it runs lets the pull finish; what it read is committed
/// with its tracking position as usual, so nothing is processed twice or skipped.
pub struct AsyncFollower<F> {
    follower: Arc<Mutex<F>>,
    pool: AsyncApplication,
}

impl<F> Clone for AsyncFollower<F> {
    fn clone(&self) -> Self {
        Self {
            follower: Arc::clone(&self.follower),
            pool: self.pool.clone(),
        }
    }
}

impl<F> std::fmt::Debug for AsyncFollower<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFollower").finish_non_exhaustive()
    }
}

impl<F: Follower + 'static> AsyncFollower<F> {
    /// Runs `follower` on the pool of `upstream` (whose saves also wake
    /// [`AsyncFollower::follow`]).
    #[must_use]
    pub fn new(follower: F, upstream: &AsyncApplication) -> Self {
        Self {
            follower: Arc::new(Mutex::new(follower)),
            pool: upstream.clone(),
        }
    }

    async fn call<R, C>(&self, call: C) -> Result<R, SystemError>
    where
        C: FnOnce(&mut F) -> Result<R, SystemError> + Send + 'static,
        R: Send + 'static,
    {
        let follower = Arc::clone(&self.follower);
        self.pool
            .spawn(move |_| {
                let mut follower = follower.lock().unwrap_or_else(PoisonError::into_inner);
                call(&mut follower)
            })
            .await
            .map_err(|error| SystemError::Runner(error.to_string()))?
    }

    /// As [`Follower::pull`]: one page; how many events it read.
    ///
    /// # Errors
    /// As [`Follower::pull`]; [`SystemError::Runner`] when the blocking call did not finish.
    pub async fn pull(&self) -> Result<usize, SystemError> {
        self.call(Follower::pull).await
    }

    /// As [`Follower::run_until_caught_up`].
    ///
    /// # Errors
    /// As [`AsyncFollower::pull`].
    pub async fn run_until_caught_up(&self) -> Result<u64, SystemError> {
        self.call(Follower::run_until_caught_up).await
    }

    /// As [`Follower::position`].
    ///
    /// # Errors
    /// As [`AsyncFollower::pull`].
    pub async fn position(&self) -> Result<u64, SystemError> {
        self.call(|f: &mut F| f.position()).await
    }

    /// Follows the upstream until an error: catches up, then waits for a save through the
    /// upstream application (or `poll_interval`, for writes from elsewhere) and catches up
    /// again. Stop it by dropping the future (a pull in flight finishes first).
    ///
    /// # Errors
    /// The first failure of a pull, which stops following.
    pub async fn follow(&self, poll_interval: Duration) -> Result<(), SystemError> {
        let mut commits = self.pool.commits();
        loop {
            commits.mark_unchanged();
            self.run_until_caught_up().await?;
            // A commit while catching up marked the receiver changed: no wait then.
            let _ = tokio::time::timeout(poll_interval, commits.changed()).await;
        }
    }

    /// Runs `inspect` on the follower (e.g. to read a projection's state), on the pool.
    ///
    /// # Errors
    /// [`SystemError::Runner`] when the blocking call did not finish.
    pub async fn with<R, I>(&self, inspect: I) -> Result<R, SystemError>
    where
        I: FnOnce(&mut F) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.call(move |f| Ok(inspect(f))).await
    }
}
