//! The system layer's error type.

use thiserror::Error;

use crate::application::ApplicationError;
use crate::persistence::{BoxError, Conflict, PersistenceError};

/// Everything that can go wrong while followers, process applications and projections run.
///
/// Every variant that concerns one upstream event names its position, so that an operator can
/// find it; the event's effects were not committed, and the next pull retries it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SystemError {
    /// Reading the upstream log failed.
    #[error("reading upstream `{upstream}` failed: {source}")]
    Upstream {
        /// The upstream application's name.
        upstream: String,
        /// The backend error.
        #[source]
        source: PersistenceError,
    },
    /// Reading or writing the follower's own store failed (tracking positions, new events).
    #[error("the store of `{follower}` failed: {source}")]
    Store {
        /// The process application or projection.
        follower: String,
        /// The backend or application error.
        #[source]
        source: ApplicationError,
    },
    /// An upstream event could not be decoded into the requested type.
    #[error("decoding upstream event at position {position:?} failed: {source}")]
    Decode {
        /// The event's position in the upstream log.
        position: Option<u64>,
        /// The mapper's error (unknown topic, malformed payload, transcoder failure).
        #[source]
        source: PersistenceError,
    },
    /// A policy returned an error; nothing of this upstream event was written.
    #[error("policy of `{process}` failed on `{upstream}` position {position}: {source}")]
    Policy {
        /// The process application.
        process: String,
        /// The upstream application.
        upstream: String,
        /// The upstream position that failed; the next pull retries it.
        position: u64,
        /// What the policy reported.
        #[source]
        source: BoxError,
    },
    /// The new events of a policy conflicted with another writer; nothing was written and the
    /// next pull retries the upstream event.
    #[error(
        "`{process}` conflicted while processing `{upstream}` position {position}: {conflict}"
    )]
    Conflict {
        /// The process application.
        process: String,
        /// The upstream application.
        upstream: String,
        /// The upstream position being processed.
        position: u64,
        /// The stream that moved on, and its versions.
        #[source]
        conflict: Conflict,
    },
    /// A projection failed to apply events; its position did not move past them.
    #[error("projection `{projection}` failed at position {position}: {source}")]
    Projection {
        /// The projection's name.
        projection: String,
        /// The first upstream position of the failed step.
        position: u64,
        /// What the projection reported.
        #[source]
        source: BoxError,
    },
    /// A runner thread panicked or could not be started.
    #[error("runner failed: {0}")]
    Runner(String),
}
