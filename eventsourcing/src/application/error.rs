//! The application layer's error type.

use thiserror::Error;
use uuid::Uuid;

use super::bus::BusError;
use crate::domain::{DomainError, ReplayError};
use crate::persistence::{Conflict, PersistenceError};

/// Everything that can go wrong when an application saves or loads aggregates.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApplicationError {
    /// No events are stored for this aggregate id.
    #[error("aggregate {id} not found")]
    NotFound {
        /// The id asked for.
        id: Uuid,
    },
    /// Time travel past the aggregate's last version ([`Repository::get_at`](crate::Repository::get_at)):
    /// the aggregate never had that version.
    #[error("aggregate {id} has no version {requested}: its last version is {latest}")]
    VersionNotFound {
        /// The id asked for.
        id: Uuid,
        /// The version asked for.
        requested: u64,
        /// The aggregate's last version.
        latest: u64,
    },
    /// The aggregate exists but was discarded (see [`crate::Entity::is_discarded`]).
    #[error("aggregate {id} was discarded")]
    Discarded {
        /// The id asked for.
        id: Uuid,
    },
    /// Another writer saved the stream first; nothing of this save was written. Reload the
    /// aggregate and retry the command.
    #[error(transparent)]
    Conflict(Conflict),
    /// A stored event could not be applied to the entity while loading it.
    #[error("loading aggregate failed: {0}")]
    Replay(#[from] ReplayError),
    /// A domain rule or codec failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The store failed.
    #[error(transparent)]
    Persistence(PersistenceError),
    /// The events were committed, but a subscriber of the application's bus failed.
    #[error("events committed up to position {last_position}, but a subscriber failed: {source}")]
    Publish {
        /// The last position committed by the save.
        last_position: u64,
        /// What the subscribers reported.
        #[source]
        source: BusError,
    },
    /// Snapshots were asked for, but the event store keeps none (it was built over an
    /// event-only recorder).
    #[error("this event store keeps no snapshots: build it over a `Storage` or give it a snapshot recorder")]
    NoSnapshotStore,
    /// Snapshots were asked for an entity type without a snapshot codec.
    #[error("entity `{entity}` has no snapshot codec (`Entity::snapshot_codec` returns `None`)")]
    NoSnapshotCodec {
        /// The entity name.
        entity: &'static str,
    },
    /// A snapshot of an aggregate with unsaved events was asked for.
    #[error("aggregate {id} has {pending} unsaved events: save it before snapshotting it")]
    UnsavedEvents {
        /// The aggregate.
        id: Uuid,
        /// How many events are pending.
        pending: usize,
    },
    /// A stored-event migration cannot go on; every batch before `position` was written.
    #[error("migration stopped at position {position}: {reason}")]
    Migration {
        /// The position of the event that stopped it; resume from here once it is fixed.
        position: u64,
        /// What went wrong.
        reason: String,
    },
    /// A migration stopped before the end of the log: every event before `resume_from` is
    /// migrated, none after it was written. Fix `source` (a transform error, a busy database,
    /// an event that a concurrent writer replaced since it was read) and run the migration
    /// again from `resume_from`.
    #[error("migration stopped; resume from position {resume_from}: {source}")]
    MigrationStopped {
        /// The position to resume from: the start of the batch that failed.
        resume_from: u64,
        /// Why it stopped.
        #[source]
        source: Box<ApplicationError>,
    },
    /// The application's configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The async facade could not run a blocking call to the end: its task panicked, or the
    /// runtime (or the facade's pool) is shutting down. For a save, whether it committed is
    /// found with `SaveReceipt::outcome` (the async facade, feature `tokio`).
    #[error("the blocking call did not finish: {reason}")]
    Worker {
        /// What happened to it.
        reason: String,
    },
}

impl ApplicationError {
    /// True for [`ApplicationError::Conflict`].
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// The conflict, for [`ApplicationError::Conflict`] (and a persistence error that is one).
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Self::Conflict(conflict) => Some(conflict),
            Self::Persistence(error) => error.conflict(),
            _ => None,
        }
    }
}

impl From<PersistenceError> for ApplicationError {
    fn from(error: PersistenceError) -> Self {
        match error {
            PersistenceError::Conflict(conflict) => Self::Conflict(conflict),
            other => Self::Persistence(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApplicationError;
    use crate::persistence::{Conflict, PersistenceError};

    #[test]
    fn a_conflict_reads_the_same_at_every_layer() {
        let conflict = Conflict {
            stream_id: "s".into(),
            expected: 1,
            actual: 2,
        };
        let persistence = PersistenceError::from(conflict.clone());
        assert_eq!(persistence.conflict(), Some(&conflict));
        let application = ApplicationError::from(persistence);
        assert!(matches!(&application, ApplicationError::Conflict(c) if *c == conflict));
        assert_eq!(application.conflict(), Some(&conflict));
        assert_eq!(
            application.to_string(),
            "conflict on stream `s`: expected version 1, found 2; nothing was written"
        );
    }
}
