#![doc = include_str!("../../README.md")]
//!
//! # Layers
//!
//! The crate is organised in layers, each with its own error type:
//!
//! - [`domain`]: entities, [`Aggregate`], [`DomainEvent`], topics and metadata (no I/O);
//! - [`persistence`]: [`StoredEvent`], the [`Mapper`], the recorder traits and the
//!   memory, SQLite and PostgreSQL recorders;
//! - [`application`]: [`EventStore`], [`Repository`], [`Application`], snapshots, migration and
//!   the notification log;
//! - [`system`]: the in-process [`EventBus`], the [`PersistenceSubscriber`], process
//!   applications with exactly-once effects ([`ProcessApplication`]), catch-up projections
//!   ([`Projector`], [`DurableProjector`]) and the [`Runner`].
//!
//! Given/when/then harnesses for tests are in [`testing`].

pub mod application;
#[cfg(feature = "tokio")]
pub mod asynchronous;
pub mod domain;
pub mod persistence;
pub mod system;
pub mod testing;
mod trace;

mod payload;

pub use application::{
    Application, ApplicationBuilder, ApplicationError, EventBus, EventSourcedRepository,
    EventStore, LoadReport, Migration, NotificationLog, Repository, Saveable, Saved,
    SnapshotPolicy, SnapshotStats, StoreUrl,
};
pub use domain::{
    topic_of, Aggregate, Checkpoint, DomainError, DomainEvent, Entity, EventContext, EventEnvelope,
    Metadata, Timestamp,
};
pub use eventsourcing_derive::{entity, DomainEvent};
pub use persistence::{
    AdminRecorder, AggregateRecorder, ApplicationRecorder, Conflict, EventQuery, Mapper,
    MemoryRecorder, NotificationQuery, PersistenceError, ProcessRecorder, SnapshotRecorder,
    Storage, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend, Tracking, Transcoder,
};
/// The JSON library payloads are written with; upcasters take and return
/// [`serde_json::Value`].
pub use serde_json;
pub use system::{
    DurableProjection, DurableProjector, Follower, Notification, PersistenceSubscriber, Policy,
    ProcessApplication, ProcessingContext, Projection, Projector, Runner, SystemError, Upstream,
};
pub use uuid::Uuid;

/// The names most applications need: `use eventsourcing::prelude::*;`.
pub mod prelude {
    pub use crate::{
        entity, Aggregate, Application, ApplicationError, DomainError, DomainEvent, Entity,
        EventEnvelope, EventSourcedRepository, EventStore, Notification, Policy,
        ProcessApplication, ProcessingContext, Projection, Projector, Repository, Runner,
        SystemError, Upstream, Uuid,
    };
    pub use serde::{Deserialize, Serialize};
}

/// What generated code needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use serde;
    pub use serde_json;
    pub use std;

    pub use crate::payload::{decode_variant, encode_variant};

    pub use crate::domain::{
        Aggregate, Checkpoint, DomainError, DomainEvent, Entity, EventTypeRegistration,
        SnapshotCodec, TopicRegistration, Upcaster,
    };

    /// Records an event produced by generated code. Generated mutators accept every
    /// non-creation event of their own entity, so the only failures left are an aggregate
    /// poisoned by an earlier panic of a mutator (the caller caught that panic and went on)
    /// and a hand-written `Entity` impl that rejects the event; both are reported loudly.
    pub fn record<T: Entity>(aggregate: &mut Aggregate<T>, event: T::Event) {
        if let Err(error) = aggregate.record(event) {
            panic!("recording an event of `{}` failed: {error}", T::NAME);
        }
    }

    /// Starts a generated command that rolls back on `Err` (see [`end_command`]).
    pub fn begin_command<T: Entity>(aggregate: &mut Aggregate<T>) {
        aggregate.begin_command();
    }

    /// Ends a generated command begun with [`begin_command`] when `began`: rolls the aggregate
    /// back if the body panicked or `failed` says its outcome is an `Err`, then returns the
    /// outcome or continues the panic.
    pub fn end_command<T: Entity, R>(
        aggregate: &mut Aggregate<T>,
        began: bool,
        outcome: std::thread::Result<R>,
        failed: impl FnOnce(&R) -> bool,
    ) -> R {
        match outcome {
            Ok(outcome) => {
                if began {
                    aggregate.end_command(failed(&outcome));
                }
                outcome
            }
            Err(panic) => {
                if began {
                    aggregate.end_command(true);
                }
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Decides, by type, whether a generated command rolls back: `Rollback<Result<T, E>>`
    /// implements [`RollbackOnErr`], every other `Rollback<R>` only [`NeverRollback`] (through
    /// `&Rollback<R>`), so a method call on a `&Rollback<R>` picks the first when `R` is a
    /// `Result` however it is spelled (an alias, a full path, a re-export) and the second
    /// otherwise.
    pub struct Rollback<R>(core::marker::PhantomData<fn() -> R>);

    impl<R> Rollback<R> {
        /// The marker for a command returning `R`.
        #[must_use]
        pub const fn new() -> Self {
            Rollback(core::marker::PhantomData)
        }
    }

    impl<R> Default for Rollback<R> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A command returning a `Result` is rolled back when it returns `Err`.
    pub trait RollbackOnErr<R> {
        /// Whether the command needs a checkpoint.
        fn __es_rolls_back(&self) -> bool;
        /// Whether `outcome` asks for the checkpoint to be restored.
        fn __es_failed(&self, outcome: &R) -> bool;
    }

    impl<T, E> RollbackOnErr<Result<T, E>> for Rollback<Result<T, E>> {
        fn __es_rolls_back(&self) -> bool {
            true
        }
        fn __es_failed(&self, outcome: &Result<T, E>) -> bool {
            outcome.is_err()
        }
    }

    /// A command returning anything else is never rolled back.
    pub trait NeverRollback<R> {
        /// Whether the command needs a checkpoint.
        fn __es_rolls_back(&self) -> bool;
        /// Whether `outcome` asks for the checkpoint to be restored.
        fn __es_failed(&self, outcome: &R) -> bool;
    }

    impl<R> NeverRollback<R> for &Rollback<R> {
        fn __es_rolls_back(&self) -> bool {
            false
        }
        fn __es_failed(&self, _: &R) -> bool {
            false
        }
    }

    /// The error for a topic that event type `E` does not declare, listing its topics.
    #[must_use]
    pub fn unknown_topic<E: DomainEvent>(topic: &str) -> DomainError {
        let mut known: Vec<String> = E::topics().into_iter().map(str::to_owned).collect();
        known.sort();
        DomainError::UnknownTopic {
            topic: topic.to_owned(),
            known,
        }
    }

    /// Creates an aggregate from a creation event produced by a generated factory.
    #[must_use]
    pub fn create<T: Entity>(event: T::Event) -> Aggregate<T> {
        match Aggregate::create(event) {
            Ok(aggregate) => aggregate,
            Err(error) => panic!(
                "the mutator of `{}` rejected its own creation event: {error}",
                T::NAME
            ),
        }
    }
}
