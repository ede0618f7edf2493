//! The async facade (feature `tokio`): the blocking core behind `async fn`s, for tokio
//! services.
//!
//! [`AsyncApplication`] wraps one [`Application`] and runs each call on tokio's blocking pool
//! (`spawn_blocking`), at most [`AsyncApplication::max_blocking`] at once: a call first waits,
//! asynchronously, for one of that many permits, so a thousand concurrent requests hold a
//! thousand small futures, never a thousand threads or connections. Set the bound to the
//! store's connection pool size (PostgreSQL's `pool_size`, 8 by default) or less. There is one
//! implementation of every operation, the blocking one; this module only moves it off the
//! executor. It needs a tokio runtime with timers enabled (`#[tokio::main]` enables them;
//! a hand-built runtime needs `enable_time()`), for the polling waits of followers.
//!
//! # What a dropped future means
//!
//! A call is in one of two places when its future is dropped (a client went away, a
//! `tokio::time::timeout` fired, a `select!` took another branch):
//!
//! - **waiting for a permit**: nothing has started and nothing ever will; for a save,
//!   nothing is written;
//! - **running on the blocking pool**: it runs to the end regardless (blocking tasks are not
//!   cancelled) and keeps its permit until then, so the bound holds. A save is one atomic
//!   append, so it commits whole or not at all.
//!
//! Either way a save is never half-written. To learn which, take the save's
//! [`SaveReceipt`] before awaiting it: [`SaveReceipt::outcome`] waits until the save can no
//! longer run (it finished, or it was dropped before it started) and then looks its first
//! event up by id in the store, which is the ground truth:
//!
//! ```
//! # use eventsourcing::prelude::*;
//! # use eventsourcing::asynchronous::{AsyncApplication, SaveOutcome};
//! # #[derive(Debug, Clone, Serialize, Deserialize)] pub struct Note { text: String }
//! # #[entity] impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
//! # let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build()?;
//! # runtime.block_on(async {
//! let app = AsyncApplication::new(Application::in_memory()?);
//! let save = app.save(Note::write("hello".into()));
//! let receipt = save.receipt();
//! // The caller gives up at once; the save may or may not have started.
//! let _ = tokio::time::timeout(std::time::Duration::ZERO, save).await;
//! match receipt.outcome().await? {
//!     SaveOutcome::Committed => { /* every event of the save is stored */ }
//!     SaveOutcome::NotCommitted => { /* none is: safe to retry the command */ }
//!     SaveOutcome::Empty => { /* the save had no pending event */ }
//! }
//! # Ok::<(), ApplicationError>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A save whose future completes returns its aggregates (their pending events cleared) and
//! the positions it wrote, or the error, exactly as [`Application::save`].
//!
//! # Followers
//!
//! [`AsyncNotificationLog::wait_after`] returns as soon as the log holds an event after a
//! position: it wakes when a save through this application commits, and polls the store at
//! the given interval for writes from elsewhere (other processes, other applications on the
//! same store). [`AsyncFollower`] runs any [`Follower`] (process application, projector) on
//! the pool; [`AsyncFollower::follow`] combines the two into a catch-up loop.

mod follower;

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

pub use follower::AsyncFollower;

use crate::application::{
    Application, ApplicationError, EventBus, EventStore, LoadReport, Saveable, Saved,
    SubscriptionId,
};
use crate::domain::{Aggregate, Entity};
use crate::persistence::{NotificationQuery, StoredEvent};
#[cfg(doc)]
use crate::system::Follower;

/// How many blocking calls run at once unless configured: PostgreSQL's default pool size.
pub const DEFAULT_MAX_BLOCKING: usize = 8;

/// An [`Application`] behind `async fn`s, its blocking calls bounded (see the
/// [module docs](self)). Cheap to clone: clones share the application and the bound.
#[derive(Clone)]
pub struct AsyncApplication {
    inner: Arc<Inner>,
}

struct Inner {
    app: Arc<Application>,
    permits: Arc<Semaphore>,
    max_blocking: usize,
    /// The highest position committed by a save through this application's bus.
    committed: watch::Sender<u64>,
    subscription: SubscriptionId,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.app.bus().unsubscribe(self.subscription);
        // The last facade often goes on an executor thread (a server's state dropped at
        // shutdown), and closing a store is blocking work: the PostgreSQL client even runs a
        // runtime of its own to close, which panics inside tokio. Close it on a plain thread.
        if tokio::runtime::Handle::try_current().is_ok() {
            // The placeholder is never used: no registry check needed.
            let placeholder = Application::from_parts(EventStore::in_memory(), EventBus::new());
            let app = std::mem::replace(&mut self.app, Arc::new(placeholder));
            if let Some(app) = Arc::into_inner(app) {
                let closing = std::thread::Builder::new()
                    .name("eventsourcing-close".into())
                    .spawn(move || drop(app));
                // Joined, so that the store is closed when the facade is gone (e.g. a
                // schema dropped on close); if no thread can be made, close it here.
                if let Ok(closing) = closing {
                    let _ = closing.join();
                }
            }
        }
    }
}

impl std::fmt::Debug for AsyncApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncApplication")
            .field("max_blocking", &self.inner.max_blocking)
            .field("available", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl AsyncApplication {
    /// The facade over `app`, at most [`DEFAULT_MAX_BLOCKING`] blocking calls at once.
    #[must_use]
    pub fn new(app: Application) -> Self {
        Self::with_max_blocking(app, DEFAULT_MAX_BLOCKING)
    }

    /// The facade over `app`, at most `max_blocking` (at least 1) blocking calls at once.
    #[must_use]
    pub fn with_max_blocking(app: Application, max_blocking: usize) -> Self {
        let max_blocking = max_blocking.clamp(1, Semaphore::MAX_PERMITS);
        let (committed, _) = watch::channel(0u64);
        let sender = committed.clone();
        // Wakes waiting followers when a save through this application commits.
        let subscription = app.bus().subscribe(move |events| {
            if let Some(last) = events.iter().filter_map(|e| e.position).max() {
                sender.send_if_modified(|seen| {
                    let newer = last > *seen;
                    if newer {
                        *seen = last;
                    }
                    newer
                });
            }
            Ok(())
        });
        Self {
            inner: Arc::new(Inner {
                app: Arc::new(app),
                permits: Arc::new(Semaphore::new(max_blocking)),
                max_blocking,
                committed,
                subscription,
            }),
        }
    }

    /// The blocking application, for calls that need no facade (e.g. in a blocking thread).
    #[must_use]
    pub fn blocking_app(&self) -> &Arc<Application> {
        &self.inner.app
    }

    /// The bound on blocking calls running at once.
    #[must_use]
    pub fn max_blocking(&self) -> usize {
        self.inner.max_blocking
    }

    /// How many blocking calls could start now without waiting.
    #[must_use]
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ApplicationError> {
        Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| ApplicationError::Worker {
                reason: "the blocking pool is closed".into(),
            })
    }

    /// Runs `f` on the blocking pool once a permit is free: the door every other method goes
    /// through, open for any blocking work on the application (snapshots, migrations, the
    /// event store). Dropping the future before `f` starts means it never runs; after, `f`
    /// runs to the end and holds its permit until then.
    ///
    /// # Errors
    /// `f`'s error, or [`ApplicationError::Worker`] when `f` panicked or the runtime shut
    /// down.
    pub async fn run<R, F>(&self, f: F) -> Result<R, ApplicationError>
    where
        F: FnOnce(&Application) -> Result<R, ApplicationError> + Send + 'static,
        R: Send + 'static,
    {
        self.spawn(f).await?
    }

    /// [`AsyncApplication::run`] for any result type: the outer error is the pool's.
    pub(crate) async fn spawn<R, F>(&self, f: F) -> Result<R, ApplicationError>
    where
        F: FnOnce(&Application) -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self.permit().await?;
        let app = Arc::clone(&self.inner.app);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&app)
        })
        .await
        .map_err(worker_error)
    }

    /// A receiver of the highest position committed through this application, changed by
    /// each save that commits.
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.inner.committed.subscribe()
    }

    /// Saves the pending events of one or more owned aggregates in one atomic append, as
    /// [`Application::save`]: `app.save(account).await`, `app.save((from, to)).await`. The
    /// aggregates come back with their pending events cleared.
    ///
    /// The returned [`Save`] is awaited directly; call [`Save::receipt`] first to be able to
    /// learn the outcome of a save whose future is dropped.
    ///
    /// # Errors
    /// As [`Application::save`] (a [`ApplicationError::Conflict`] writes nothing), or
    /// [`ApplicationError::Worker`].
    pub fn save<S>(&self, aggregates: S) -> Save<S>
    where
        S: Saveable + Send + 'static,
    {
        let mut event_ids = Vec::new();
        aggregates.collect_event_ids(&mut event_ids);
        let (running, settled) = oneshot::channel();
        Save {
            app: self.clone(),
            aggregates,
            running,
            receipt: SaveReceipt {
                app: self.clone(),
                event_ids: Arc::new(event_ids),
                settled: Arc::new(tokio::sync::Mutex::new(Some(settled))),
            },
        }
    }

    /// The aggregate with this id at its latest version, as [`Application::get`].
    ///
    /// # Errors
    /// As [`Repository::get`](crate::Repository::get), or [`ApplicationError::Worker`].
    pub async fn get<T: Entity>(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        self.run(move |app| app.get::<T>(id)).await
    }

    /// A repository for entities of type `T`.
    #[must_use]
    pub fn repository<T: Entity>(&self) -> AsyncRepository<T> {
        AsyncRepository {
            app: self.clone(),
            entity: PhantomData,
        }
    }

    /// The notification log: every event in global order.
    #[must_use]
    pub fn notification_log(&self) -> AsyncNotificationLog {
        AsyncNotificationLog { app: self.clone() }
    }
}

fn worker_error(error: tokio::task::JoinError) -> ApplicationError {
    let reason = if error.is_panic() {
        "its task panicked".to_owned()
    } else {
        "the runtime is shutting down".to_owned()
    };
    ApplicationError::Worker { reason }
}

/// A save not yet awaited ([`AsyncApplication::save`]). Await it for the aggregates and what
/// was written; take its [`receipt`](Save::receipt) first to learn the outcome even if this
/// future is dropped.
#[must_use = "a save does nothing until it is awaited"]
pub struct Save<S> {
    app: AsyncApplication,
    aggregates: S,
    /// Dropped when the save can no longer run: when its blocking task ends, or with this
    /// value if it never started.
    running: oneshot::Sender<()>,
    receipt: SaveReceipt,
}

impl<S> std::fmt::Debug for Save<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Save")
            .field("events", &self.receipt.event_ids.len())
            .finish_non_exhaustive()
    }
}

impl<S> Save<S> {
    /// A receipt for this save, to learn its outcome after its future is dropped.
    pub fn receipt(&self) -> SaveReceipt {
        self.receipt.clone()
    }
}

impl<S: Saveable + Send + 'static> IntoFuture for Save<S> {
    type Output = Result<(S, Saved), ApplicationError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let Save {
            app,
            aggregates,
            running,
            receipt: _,
        } = self;
        Box::pin(async move {
            let permit = app.permit().await?;
            let blocking = Arc::clone(&app.inner.app);
            tokio::task::spawn_blocking(move || {
                let (_permit, _running) = (permit, running);
                let mut aggregates = aggregates;
                let saved = blocking.save(&mut aggregates)?;
                Ok((aggregates, saved))
            })
            .await
            .map_err(worker_error)?
        })
    }
}

/// What became of a save ([`SaveReceipt::outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Every event of the save is stored.
    Committed,
    /// No event of the save is stored, and the save will not run any more.
    NotCommitted,
    /// The save had no pending event, so there was nothing to write.
    Empty,
}

/// Tells whether a save committed, even if its future was dropped
/// ([`Save::receipt`]). Cheap to clone.
#[derive(Clone)]
pub struct SaveReceipt {
    app: AsyncApplication,
    event_ids: Arc<Vec<Uuid>>,
    settled: Arc<tokio::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl std::fmt::Debug for SaveReceipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveReceipt")
            .field("event_ids", &self.event_ids)
            .finish_non_exhaustive()
    }
}

impl SaveReceipt {
    /// The ids of the events the save writes, in order.
    #[must_use]
    pub fn event_ids(&self) -> &[Uuid] {
        &self.event_ids
    }

    /// Waits until the save can no longer run (it finished, or its future was dropped before
    /// it started), then reads whether its events are stored. A save is atomic, so its first
    /// event decides. Waits forever for a save future that is kept but never awaited.
    ///
    /// # Errors
    /// Backend errors of the lookup, or [`ApplicationError::Worker`].
    pub async fn outcome(&self) -> Result<SaveOutcome, ApplicationError> {
        let Some(&first) = self.event_ids.first() else {
            return Ok(SaveOutcome::Empty);
        };
        {
            let mut settled = self.settled.lock().await;
            if let Some(receiver) = settled.take() {
                // The sender is only ever dropped, never used: `Err` means settled.
                let _ = receiver.await;
            }
        }
        let found = self
            .app
            .run(move |app| Ok(app.event_store().recorder().event_by_id(first)?))
            .await?;
        Ok(if found.is_some() {
            SaveOutcome::Committed
        } else {
            SaveOutcome::NotCommitted
        })
    }
}

/// Loads aggregates of one entity type ([`AsyncApplication::repository`]).
pub struct AsyncRepository<T> {
    app: AsyncApplication,
    entity: PhantomData<fn() -> T>,
}

impl<T> Clone for AsyncRepository<T> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            entity: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for AsyncRepository<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRepository")
            .field("entity", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Entity> AsyncRepository<T> {
    /// As [`Repository::get`](crate::Repository::get).
    ///
    /// # Errors
    /// As [`Repository::get`](crate::Repository::get), or [`ApplicationError::Worker`].
    pub async fn get(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        self.app.run(move |app| app.repository::<T>().get(id)).await
    }

    /// As [`Repository::get_at`](crate::Repository::get_at) (time travel).
    ///
    /// # Errors
    /// As [`Repository::get_at`](crate::Repository::get_at), or [`ApplicationError::Worker`].
    pub async fn get_at(&self, id: Uuid, version: u64) -> Result<Aggregate<T>, ApplicationError> {
        self.app
            .run(move |app| app.repository::<T>().get_at(id, version))
            .await
    }

    /// As [`Repository::contains`](crate::Repository::contains).
    ///
    /// # Errors
    /// Backend errors, or [`ApplicationError::Worker`].
    pub async fn contains(&self, id: Uuid) -> Result<bool, ApplicationError> {
        self.app
            .run(move |app| app.repository::<T>().contains(id))
            .await
    }

    /// As [`Repository::load`](crate::Repository::load).
    ///
    /// # Errors
    /// As [`Repository::load`](crate::Repository::load), or [`ApplicationError::Worker`].
    pub async fn load(
        &self,
        id: Uuid,
        at: Option<u64>,
    ) -> Result<(Aggregate<T>, LoadReport), ApplicationError> {
        self.app
            .run(move |app| app.repository::<T>().load(id, at))
            .await
    }
}

/// The notification log behind `async fn`s ([`AsyncApplication::notification_log`]).
#[derive(Debug, Clone)]
pub struct AsyncNotificationLog {
    app: AsyncApplication,
}

impl AsyncNotificationLog {
    /// Up to `limit` events from `from_position` (inclusive), as
    /// [`NotificationLog::select`](crate::NotificationLog::select).
    ///
    /// # Errors
    /// Backend errors, or [`ApplicationError::Worker`].
    pub async fn select(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ApplicationError> {
        self.app
            .run(move |app| app.notification_log().select(from_position, limit))
            .await
    }

    /// Events matching a query, as [`NotificationLog::query`](crate::NotificationLog::query).
    ///
    /// # Errors
    /// Backend errors, or [`ApplicationError::Worker`].
    pub async fn query(
        &self,
        query: NotificationQuery,
    ) -> Result<Vec<StoredEvent>, ApplicationError> {
        self.app
            .run(move |app| app.notification_log().query(&query))
            .await
    }

    /// The highest position readers can see (0 when empty).
    ///
    /// # Errors
    /// Backend errors, or [`ApplicationError::Worker`].
    pub async fn max_position(&self) -> Result<u64, ApplicationError> {
        self.app
            .run(|app| app.notification_log().max_position())
            .await
    }

    /// Up to `limit` events after `after` (exclusive), waiting until there is at least one:
    /// woken by each save through this application, and polling the store every
    /// `poll_interval` for writes from elsewhere. Never returns an empty page.
    ///
    /// # Errors
    /// Backend errors, or [`ApplicationError::Worker`].
    pub async fn wait_after(
        &self,
        after: u64,
        limit: usize,
        poll_interval: Duration,
    ) -> Result<Vec<StoredEvent>, ApplicationError> {
        let mut commits = self.app.commits();
        loop {
            commits.mark_unchanged();
            let page = self.select(after.saturating_add(1), limit.max(1)).await?;
            if !page.is_empty() {
                return Ok(page);
            }
            // Either a commit through this application or the poll interval: both re-read.
            let _ = tokio::time::timeout(poll_interval, commits.changed()).await;
        }
    }

    /// The highest position a save through this application is known to have committed (0
    /// before the first): changes wake [`AsyncNotificationLog::wait_after`].
    #[must_use]
    pub fn last_committed(&self) -> u64 {
        *self.app.inner.committed.borrow()
    }
}
