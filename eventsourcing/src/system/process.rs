//! Process applications: follow an upstream log, run a policy on each event, and commit the
//! policy's new events together with the tracking record, so every upstream event takes
//! effect exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

use crate::application::{Application, ApplicationError, Saveable};
use crate::domain::Timestamp;
use crate::domain::{Aggregate, DomainError, Entity, EventContext};
use crate::persistence::Conflict;
use crate::trace::Timed;

use super::parked::{self, ErrorPolicy, ParkedEvent, DISCARDED_TOPIC, RETRIED_TOPIC};
use crate::persistence::{
    BoxError, Mapper, PersistenceError, StoredEvent, StoredSnapshot, StreamAppend, Tracking,
};

use super::competing::{partition_of, Competing, Membership};
use super::error::SystemError;
use super::follow::{
    catch_up, Follower, FollowerStatus, Notification, Upstream, DEFAULT_PAGE_SIZE,
};
use crate::persistence::{Lease, LeaseRecorder};

/// What a process application does with each upstream event.
///
/// A policy reads the event, loads, creates or changes aggregates of the downstream
/// application through the [`ProcessingContext`], and saves them with
/// [`ProcessingContext::save`]. Nothing is written while the policy runs: when it returns
/// `Ok`, the saved events and the upstream position commit in one transaction; when it
/// returns `Err`, nothing of this event is written and the next pull retries it. A policy may
/// therefore run more than once for one event (after an error or a conflict), but its effects
/// land once: keep side effects outside the downstream store (emails, HTTP calls) out of
/// policies, or make them idempotent.
///
/// Closures `FnMut(&Notification, &mut ProcessingContext) -> Result<(), BoxError>` are
/// policies too.
pub trait Policy: Send {
    /// Only upstream events with these topics are read (all when empty, the default).
    fn topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// Handles one upstream event.
    ///
    /// # Errors
    /// Whatever stops the event from being processed; it is retried by the next pull.
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError>;
}

impl<F> Policy for F
where
    F: FnMut(&Notification<'_>, &mut ProcessingContext<'_>) -> Result<(), BoxError> + Send,
{
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        self(event, ctx)
    }
}

/// The downstream side of one upstream event: loads and creates aggregates whose new events
/// are caused by it, and collects what the policy saves.
///
/// Every event saved through the context carries the upstream event's id as its
/// `causation_id` and the upstream correlation id (or, when the upstream event starts a
/// conversation, its id) as its `correlation_id`, plus the upstream user metadata, unless the
/// aggregate set its own context.
#[derive(Debug)]
pub struct ProcessingContext<'a> {
    application: &'a Application,
    context: EventContext,
    appends: Vec<StreamAppend>,
    /// The automatic snapshots due after the saves, written once the commit succeeded.
    snapshots: Vec<(Uuid, StoredSnapshot)>,
    /// Streams written by earlier upstream events of the same page, not committed yet (in a
    /// batched pull): touching one of them, or reading the application directly while any
    /// is pending, makes this run see stale state.
    pending: Option<&'a HashSet<String>>,
    stale: AtomicBool,
}

impl<'a> ProcessingContext<'a> {
    /// A context for events caused by `cause`, to be saved in `application`.
    #[must_use]
    pub fn new(application: &'a Application, cause: &StoredEvent) -> Self {
        Self {
            application,
            context: EventContext::caused_by(&cause.metadata),
            appends: Vec::new(),
            snapshots: Vec::new(),
            pending: None,
            stale: AtomicBool::new(false),
        }
    }

    /// A context for one event of a batched page: `pending` are the streams written by
    /// earlier events of the page, not committed yet.
    fn in_page(
        application: &'a Application,
        cause: &StoredEvent,
        pending: &'a HashSet<String>,
    ) -> Self {
        Self {
            pending: Some(pending),
            ..Self::new(application, cause)
        }
    }

    /// Notes an access to `stream_id` (or to the whole store when `None`) that cannot see
    /// events pending earlier in the page.
    fn touch(&self, stream_id: Option<&str>) {
        if let Some(pending) = self.pending {
            let stale = match stream_id {
                Some(stream_id) => pending.contains(stream_id),
                None => !pending.is_empty(),
            };
            if stale {
                self.stale.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The downstream application (to read other state; save through the context).
    #[must_use]
    pub fn application(&self) -> &'a Application {
        self.touch(None);
        self.application
    }

    /// The causation and correlation that new events get.
    #[must_use]
    pub fn event_context(&self) -> &EventContext {
        &self.context
    }

    /// Loads a downstream aggregate, ready to record events caused by the upstream event.
    ///
    /// Reads the store: an aggregate saved earlier in this same context is not seen yet, so
    /// load each aggregate once per upstream event.
    ///
    /// # Errors
    /// As [`crate::Repository::get`].
    pub fn get<T: Entity>(&self, id: Uuid) -> Result<Aggregate<T>, ApplicationError> {
        self.touch(Some(&id.to_string()));
        let mut aggregate = self.application.get::<T>(id)?;
        aggregate.set_context(self.context.clone());
        Ok(aggregate)
    }

    /// As [`ProcessingContext::get`], with `None` for an aggregate that does not exist.
    ///
    /// # Errors
    /// As [`crate::Repository::get`], except [`ApplicationError::NotFound`].
    pub fn find<T: Entity>(&self, id: Uuid) -> Result<Option<Aggregate<T>>, ApplicationError> {
        match self.get(id) {
            Ok(aggregate) => Ok(Some(aggregate)),
            Err(ApplicationError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Creates a downstream aggregate with a given id (derive it from the upstream ids to make
    /// creation idempotent), recording events caused by the upstream event.
    ///
    /// # Errors
    /// The mutator's error.
    pub fn create_with_id<T: Entity>(
        &self,
        id: Uuid,
        event: T::Event,
    ) -> Result<Aggregate<T>, DomainError> {
        Aggregate::create_in_context(id, event, self.context.clone())
    }

    /// Creates a downstream aggregate with a fresh id. Aggregates made by generated factories
    /// (`Order::place(..)`) work too: [`ProcessingContext::save`] adds the causation.
    ///
    /// # Errors
    /// The mutator's error.
    pub fn create<T: Entity>(&self, event: T::Event) -> Result<Aggregate<T>, DomainError> {
        self.create_with_id(Uuid::now_v7(), event)
    }

    /// Collects the pending events of one or more aggregates (as [`Application::save`] takes
    /// them) to commit with the tracking record once the policy returns `Ok`. The aggregates'
    /// pending events are cleared now; nothing is written if the policy later fails.
    ///
    /// # Errors
    /// Encoding errors; [`ApplicationError::Conflict`] when an aggregate's events do not
    /// follow on from the events already collected for its stream in this context.
    pub fn save<S: Saveable>(&mut self, mut aggregates: S) -> Result<(), ApplicationError> {
        let mut appends = Vec::new();
        let store = self.application.event_store();
        aggregates.collect_appends(store.mapper(), &mut appends)?;
        if store.snapshot_recorder().is_some() {
            aggregates.collect_snapshots(store, &mut self.snapshots)?;
        }
        for mut append in appends {
            self.touch(Some(&append.stream_id));
            for event in &mut append.events {
                self.stamp(store.mapper(), event)?;
            }
            self.merge(append)?;
        }
        aggregates.mark_saved();
        Ok(())
    }

    /// The appends collected so far.
    #[must_use]
    pub fn pending(&self) -> &[StreamAppend] {
        &self.appends
    }

    /// Takes the collected appends out.
    #[must_use]
    pub fn into_appends(self) -> Vec<StreamAppend> {
        self.appends
    }

    /// The appends and the automatic snapshots collected so far.
    fn into_parts(self) -> (Vec<StreamAppend>, Vec<(Uuid, StoredSnapshot)>) {
        (self.appends, self.snapshots)
    }

    /// Adds the cause's causation, correlation and user metadata to an event already in its
    /// stored form (user values encrypted by `mapper` when it encrypts metadata).
    fn stamp(&self, mapper: &Mapper, event: &mut StoredEvent) -> Result<(), PersistenceError> {
        let metadata = &mut event.metadata;
        if metadata.causation_id.is_none() {
            metadata.causation_id = self.context.causation_id;
            metadata.correlation_id = self.context.correlation_id;
        }
        for (key, value) in &self.context.user {
            if !metadata.user.contains_key(key) {
                let stored = mapper.encode_metadata_value(
                    &event.stream_id,
                    event.version,
                    metadata.event_id,
                    key,
                    value,
                )?;
                metadata.user.insert(key.clone(), stored);
            }
        }
        Ok(())
    }

    /// Takes the cause's user metadata as `mapper` (the upstream's) decodes it, so that
    /// encrypted values are carried on as plain values (encrypted again for each new event).
    fn with_cause_decoded(
        mut self,
        mapper: &Mapper,
        cause: &StoredEvent,
    ) -> Result<Self, SystemError> {
        if cause.metadata.user.is_empty() {
            return Ok(self);
        }
        self.context.user = mapper
            .decode_metadata(cause)
            .map_err(|source| SystemError::Decode {
                position: cause.position,
                source,
            })?
            .user;
        Ok(self)
    }

    fn merge(&mut self, append: StreamAppend) -> Result<(), ApplicationError> {
        let Some(existing) = self
            .appends
            .iter_mut()
            .find(|a| a.stream_id == append.stream_id)
        else {
            self.appends.push(append);
            return Ok(());
        };
        let next = existing.expected_version + existing.events.len() as u64;
        if append.expected_version != next {
            return Err(ApplicationError::Conflict(Conflict {
                stream_id: append.stream_id,
                expected: append.expected_version,
                actual: next,
            }));
        }
        existing.events.extend(append.events);
        Ok(())
    }
}

/// What [`ProcessApplication::process`] did with one upstream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The policy ran and its events (possibly none) committed with the tracking record;
    /// `events` is how many new events were written.
    Committed {
        /// How many downstream events were written.
        events: usize,
    },
    /// The upstream position was already tracked: processed before (by this or another
    /// instance); nothing was written.
    AlreadyTracked,
    /// The policy kept failing and the event was parked ([`ErrorPolicy::park_after`]): its
    /// dead-letter record was committed with the tracking record, and nothing else.
    Parked,
    /// The event's partition is not (or no longer) leased to this instance
    /// ([`ProcessApplication::competing`]): nothing was written; its holder processes it.
    Fenced,
}

/// Where the commit of an upstream event is tracked, and the lease that fences it (for an
/// instance of a competing process application).
#[derive(Debug, Clone)]
struct Route {
    tracking: String,
    lease: Option<Lease>,
    partition: Option<u32>,
}

impl Route {
    fn tracking(&self, from_position: u64, position: u64) -> Tracking {
        let tracking = Tracking::page(self.tracking.clone(), from_position, position);
        match &self.lease {
            Some(lease) => tracking.fenced(lease.clone()),
            None => tracking,
        }
    }
}

/// A downstream application that follows an upstream application's log and runs a
/// [`Policy`] on each event, with exactly-once effects.
///
/// Its position in the upstream log is the highest position tracked in its own store
/// ([`crate::ProcessRecorder::max_tracking_position`] under the upstream's name), so after a
/// restart it carries on right after the last committed event: no event is processed twice
/// (a duplicate commit fails with `AlreadyTracked` and is skipped) and none is lost (an event
/// whose commit failed is read again).
///
/// ```
/// use eventsourcing::prelude::*;
/// use eventsourcing::system::{Notification, ProcessApplication, ProcessingContext, Upstream};
/// use eventsourcing::persistence::BoxError;
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Note { text: String }
/// #[entity]
/// impl Note { #[event(Written)] fn write(text: String) -> Self { Note { text } } }
///
/// let notes = Application::in_memory()?;
/// app_save(&notes, "hello")?;
///
/// // Copies every note into the downstream application, upper-cased.
/// let shout = |event: &Notification<'_>, ctx: &mut ProcessingContext<'_>| -> Result<(), BoxError> {
///     if let Some(NoteEvent::Written { text }) = event.decode::<NoteEvent>()?.map(|e| e.event) {
///         ctx.save(&mut Note::write(text.to_uppercase()))?;
///     }
///     Ok(())
/// };
/// let mut process = ProcessApplication::new(Application::in_memory()?, Upstream::application("notes", &notes), shout);
/// assert_eq!(process.run_until_caught_up()?, 1);
/// assert_eq!(process.run_until_caught_up()?, 0); // caught up: nothing twice
/// let copied = process.application().notification_log().select(1, 10)?;
/// assert_eq!(copied.len(), 1);
/// assert!(copied[0].metadata.causation_id.is_some());
///
/// fn app_save(app: &Application, text: &str) -> Result<(), ApplicationError> {
///     app.save(&mut Note::write(text.into())).map(drop)
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ProcessApplication<P> {
    name: String,
    application: Application,
    upstream: Upstream,
    policy: P,
    topics: Vec<String>,
    page_size: usize,
    batch_commits: bool,
    errors: ErrorPolicy,
    /// The leases of this instance, when it competes with others for the upstream.
    competing: Option<Membership>,
    /// Competing: the last upstream position scanned for the partitions held.
    cursor: u64,
}

impl<P: Policy> ProcessApplication<P> {
    /// A process application writing to `application` (whose store also keeps the tracking
    /// records), following `upstream`, running `policy`. Its name defaults to
    /// `"<upstream>-follower"`; see [`ProcessApplication::named`].
    pub fn new(application: Application, upstream: Upstream, policy: P) -> Self {
        let topics = policy.topics();
        Self {
            name: format!("{}-follower", upstream.name()),
            application,
            upstream,
            policy,
            topics,
            page_size: DEFAULT_PAGE_SIZE,
            batch_commits: false,
            errors: ErrorPolicy::default(),
            competing: None,
            cursor: u64::MAX,
        }
    }

    /// Shares the upstream with other instances of this process application (same name, same
    /// downstream store), in this or other processes: the upstream is divided into
    /// partitions by stream id, and each instance processes the partitions it leases
    /// (see [`Competing`] and `docs/SYSTEM.md`). Per-stream order and exactly-once are
    /// kept; an instance whose lease expired or was taken over cannot commit.
    ///
    /// The downstream store must keep leases ([`crate::ProcessRecorder::leases`]: memory,
    /// SQLite and PostgreSQL do); the first pull fails with [`SystemError::Store`]
    /// otherwise. Moving a follower from one instance to competing instances carries its
    /// position over; moving back is not automatic.
    #[must_use]
    pub fn competing(mut self, competing: Competing) -> Self {
        self.competing = Some(Membership::new(competing, &self.name));
        self
    }

    /// What to do when the policy fails on an upstream event: retry with backoff, then stop
    /// (the default: three attempts, then the error; the next pull reads the event again) or
    /// park the event and go on ([`ErrorPolicy::park_after`]). Parked events are listed by
    /// [`ProcessApplication::parked`] and dealt with by [`ProcessApplication::retry_parked`]
    /// and [`ProcessApplication::discard_parked`].
    #[must_use]
    pub fn on_error(mut self, errors: ErrorPolicy) -> Self {
        self.errors = errors;
        self
    }

    /// Names the process application (in errors and runner reports).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        if let Some(membership) = self.competing.take() {
            self.competing = Some(Membership::new(membership.config().clone(), &self.name));
        }
        self
    }

    /// Reads `page_size` upstream events per page (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Commits each page of upstream events in one transaction, with one tracking record at
    /// the page's last position, instead of one transaction per event (off by default).
    ///
    /// Catching up on a long upstream log then costs one commit per page. The policy still
    /// runs once per event, each in its own [`ProcessingContext`]. An event whose policy
    /// touches a stream written by an earlier event of the page (`get`, `find` or `save`), or
    /// reads [`ProcessingContext::application`] after earlier events of the page wrote
    /// anything, would see stale state: the page is committed up to the event before it, and
    /// that event runs again at the start of the next batch. When the batched commit fails,
    /// its events are processed one by one as without batching, so errors are reported for
    /// the event that causes them.
    ///
    /// Safe beside competing instances: the page's tracking record covers the whole page
    /// ([`Tracking::page`](crate::persistence::Tracking::page)), so a commit whose page reaches
    /// back to a position another instance tracked meanwhile is refused, and its events are
    /// retried one by one, skipping those already processed (test:
    /// `two_batching_instances_apply_each_event_once`). Off by default: a page that fails is
    /// processed again event by event, and one commit per event keeps the latency of each
    /// effect lowest while following a live upstream.
    #[must_use]
    pub fn batch_commits(mut self, batch_commits: bool) -> Self {
        self.batch_commits = batch_commits;
        self
    }

    /// The downstream application.
    #[must_use]
    pub fn application(&self) -> &Application {
        &self.application
    }

    /// The upstream log.
    #[must_use]
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, mutably (e.g. to change its configuration between pulls).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The last upstream position committed (0 when none). For competing instances, the
    /// lowest of the partitions' positions: every upstream event up to it is processed, by
    /// one instance or another.
    ///
    /// # Errors
    /// [`SystemError::Store`] when the downstream store fails.
    pub fn position(&self) -> Result<u64, SystemError> {
        let Some(membership) = &self.competing else {
            return self.tracked_at(self.upstream.name());
        };
        let count = membership.config().partitions();
        let before = self.tracked_at(self.upstream.name())?;
        let mut lowest = u64::MAX;
        for partition in 0..count {
            lowest = lowest.min(self.partition_position(partition, count, before)?);
        }
        Ok(lowest)
    }

    /// The highest position tracked under `name` (0 when none).
    fn tracked_at(&self, name: &str) -> Result<u64, SystemError> {
        self.application
            .event_store()
            .recorder()
            .max_tracking_position(name)
            .map(Option::unwrap_or_default)
            .map_err(|e| self.store_error(e.into()))
    }

    /// A partition's tracked position: its own record, or `before`, the position tracked
    /// before the follower was partitioned (read once by callers that need several).
    fn partition_position(
        &self,
        partition: u32,
        count: u32,
        before: u64,
    ) -> Result<u64, SystemError> {
        let own = super::competing::tracking_name(self.upstream.name(), partition, count);
        Ok(self.tracked_at(&own)?.max(before))
    }

    /// The partitions this instance leases now (empty unless competing), with the position
    /// tracked for each.
    #[must_use]
    pub fn partitions_held(&self) -> Vec<(u32, u64)> {
        self.competing
            .as_ref()
            .map(|m| m.held.iter().map(|(p, h)| (*p, h.tracked)).collect())
            .unwrap_or_default()
    }

    /// The live instances seen at the last heartbeat (owner ids), this one included; empty
    /// unless competing.
    #[must_use]
    pub fn members(&self) -> &[String] {
        self.competing
            .as_ref()
            .map_or(&[], |m| m.members.as_slice())
    }

    /// Releases this instance's leases (graceful stop): the other instances take its
    /// partitions over at their next heartbeat rather than after the leases expire. The next
    /// pull takes leases again.
    ///
    /// # Errors
    /// [`SystemError::Store`] when the store fails (the leases then expire on their own).
    pub fn release_leases(&mut self) -> Result<(), SystemError> {
        let Some(membership) = &mut self.competing else {
            return Ok(());
        };
        let result = match self.application.event_store().recorder().leases() {
            Some(leases) => membership.release_all(leases),
            None => Ok(()),
        };
        self.cursor = u64::MAX;
        result.map_err(|e| self.store_error(e.into()))
    }

    /// The store's leases, or the error saying that the store keeps none.
    fn leases_of(application: &Application) -> Result<&dyn LeaseRecorder, PersistenceError> {
        application
            .event_store()
            .recorder()
            .leases()
            .ok_or_else(|| PersistenceError::Unsupported {
                backend: "this store",
                operation: "leases (competing process applications)",
                reason: "it keeps no leases (ProcessRecorder::leases is None): use SQLite or \
                         PostgreSQL, whose leases fence each commit",
            })
    }

    /// Competing: renews leases and rebalances when a heartbeat is due; returns whether
    /// partitions were taken (their earlier events are then to be read).
    fn heartbeat_if_due(&mut self) -> Result<bool, SystemError> {
        let Some(membership) = &mut self.competing else {
            return Ok(false);
        };
        if !membership.due() {
            return Ok(false);
        }
        let change =
            Self::leases_of(&self.application).and_then(|leases| membership.heartbeat(leases));
        let mut change = match change {
            Ok(change) => change,
            Err(e) => {
                membership.retry_soon();
                return Err(self.store_error(e.into()));
            }
        };
        let count = membership.config().partitions();
        // A partition becomes routable only once its tracked position is known; one whose
        // position cannot be read is left out (its lease is released as stale at the next
        // heartbeat, which comes at the next pull).
        let mut taken = Vec::new();
        let mut failure = change.error.take().map(|e| self.store_error(e.into()));
        // The position from before the follower was partitioned, read once.
        let mut before = 0;
        if !change.taken.is_empty() {
            match self.tracked_at(self.upstream.name()) {
                Ok(position) => before = position,
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        for (partition, lease) in std::mem::take(&mut change.taken) {
            if failure.is_some() {
                break;
            }
            match self.partition_position(partition, count, before) {
                Ok(tracked) => {
                    if let Some(m) = self.competing.as_mut() {
                        m.hold(partition, lease, self.upstream.name(), tracked);
                    }
                    self.cursor = self.cursor.min(tracked);
                    taken.push(partition);
                }
                Err(error) => failure = Some(error),
            }
        }
        if !taken.is_empty() || !change.dropped.is_empty() {
            tracing::info!(follower = %self.name, taken = ?taken, dropped = ?change.dropped,
                "partitions rebalanced");
        }
        if let Some(error) = failure {
            if let Some(m) = self.competing.as_mut() {
                m.retry_soon();
            }
            return Err(error);
        }
        Ok(!taken.is_empty())
    }

    /// The route of every event of a single instance: the upstream's tracking record.
    fn single_route(&self) -> Route {
        Route {
            tracking: self.upstream.name().to_owned(),
            lease: None,
            partition: None,
        }
    }

    /// Where `event` commits: the upstream's tracking record, or (competing) its partition's,
    /// fenced by the partition's lease; `None` when another instance holds the partition.
    fn route(&self, event: &StoredEvent, tracked: u64) -> Option<(Route, u64)> {
        let Some(membership) = &self.competing else {
            return Some((self.single_route(), tracked));
        };
        let partition = partition_of(&event.stream_id, membership.config().partitions());
        let held = membership.held.get(&partition)?;
        Some((
            Route {
                tracking: held.tracking.clone(),
                lease: Some(held.lease.clone()),
                partition: Some(partition),
            },
            held.tracked,
        ))
    }

    /// Competing: notes what processing an event of `route` came to.
    fn settle(&mut self, route: &Route, position: u64, processed: Processed) {
        let (Some(membership), Some(partition)) = (&mut self.competing, route.partition) else {
            return;
        };
        if processed == Processed::Fenced {
            membership.lost(partition);
            tracing::warn!(follower = %self.name, partition, "lease lost: partition dropped");
        } else if let Some(held) = membership.held.get_mut(&partition) {
            held.tracked = held.tracked.max(position);
        }
    }

    /// Processes one page of upstream events after the last committed position; returns how
    /// many upstream events were read (0 when caught up). Stops at the first failing event:
    /// the events before it stay committed, it and the rest of the page are read again next
    /// time. Commits once per event, or once per page with
    /// [`ProcessApplication::batch_commits`].
    ///
    /// # Errors
    /// The first failure: reading upstream, the policy, a conflict, or the store.
    pub fn pull(&mut self) -> Result<usize, SystemError> {
        let name = self.name.clone();
        let mut tracked = 0;
        let read = crate::trace::pull(&name, || {
            let (read, after) = self.pull_page()?;
            tracked = after;
            Ok(read)
        })?;
        crate::trace::metrics::follower_lag(&name, || {
            let end = self.upstream.max_position().ok()?;
            Some(end.saturating_sub(tracked))
        });
        Ok(read)
    }

    /// One page; how many events were read and the position tracked after them.
    fn pull_page(&mut self) -> Result<(usize, u64), SystemError> {
        if self.competing.is_some() {
            return self.pull_page_competing();
        }
        let from = self.position()? + 1;
        let page = self.upstream.select(from, self.page_size, &self.topics)?;
        let route = self.single_route();
        if self.batch_commits {
            let events: Vec<&StoredEvent> = page.iter().collect();
            let mut done = 0;
            while done < events.len() {
                done += self.process_batch(&events[done..], &route)?;
            }
        } else {
            // The tracked position is read once a page: each commit's tracking guard still
            // refuses an event that a competing instance committed meanwhile.
            let mut tracked = from - 1;
            for event in &page {
                self.process_after(event, &route, tracked, None)?;
                tracked = tracked.max(event.position.unwrap_or(tracked));
            }
        }
        let tracked = page
            .last()
            .and_then(|e| e.position)
            .map_or(from - 1, |last| last.max(from - 1));
        Ok((page.len(), tracked))
    }

    /// One page as a competing instance: the events of the partitions held, each committed
    /// with its partition's tracking record and lease; the others are skipped (their
    /// holders process them).
    fn pull_page_competing(&mut self) -> Result<(usize, u64), SystemError> {
        self.heartbeat_if_due()?;
        if self.competing.as_ref().is_none_or(|m| m.held.is_empty()) {
            return Ok((0, 0));
        }
        let from = self.cursor.saturating_add(1);
        let page = self.upstream.select(from, self.page_size, &self.topics)?;
        let last = page.last().and_then(|e| e.position);
        if self.batch_commits {
            // Per partition, in position order: one commit per run of a partition's events.
            let mut groups: BTreeMap<u32, (Route, Vec<&StoredEvent>)> = BTreeMap::new();
            for event in &page {
                if let Some((route, tracked)) = self.route(event, 0) {
                    if event.position.is_some_and(|p| p > tracked) {
                        if let Some(partition) = route.partition {
                            groups
                                .entry(partition)
                                .or_insert((route, Vec::new()))
                                .1
                                .push(event);
                        }
                    }
                }
            }
            for (_, (route, events)) in groups {
                let mut done = 0;
                while done < events.len() && self.route(events[done], 0).is_some() {
                    done += self.process_batch(&events[done..], &route)?;
                    // Leases renewed between batches; partitions taken start further back.
                    if self.heartbeat_if_due()? {
                        return Ok((page.len(), self.cursor));
                    }
                }
            }
        } else {
            for event in &page {
                if let Some((route, tracked)) = self.route(event, 0) {
                    let position = event.position.unwrap_or_default();
                    if position > tracked {
                        self.process_after(event, &route, tracked, None)?;
                    }
                }
                self.cursor = event.position.unwrap_or(self.cursor);
                // Partitions taken mid-page start further back: read from there next.
                if self.heartbeat_if_due()? {
                    return Ok((page.len(), self.cursor));
                }
            }
        }
        if let Some(last) = last {
            self.cursor = self.cursor.max(last);
        }
        Ok((page.len(), self.cursor))
    }

    /// Runs the policy on the leading events of `events` and commits their events with one
    /// tracking record (the last one's position) in one transaction; returns how many events
    /// were dealt with (at least one). The batch ends before an event whose policy fails, or
    /// that would have seen stale state; a failing commit falls back to [`Self::process`]
    /// for each event of the batch.
    fn process_batch(
        &mut self,
        events: &[&StoredEvent],
        route: &Route,
    ) -> Result<usize, SystemError> {
        let span = Timed::new(tracing::debug_span!(
            "process",
            process = %self.name,
            position = events.first().and_then(|e| e.position),
            batch = true,
            events = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.process_batch_traced(events, route));
        if let Ok(taken) = &result {
            span.record("events", *taken);
        }
        span.finish(&result);
        result
    }

    fn process_batch_traced(
        &mut self,
        events: &[&StoredEvent],
        route: &Route,
    ) -> Result<usize, SystemError> {
        let mut appends: Vec<StreamAppend> = Vec::new();
        let mut snapshots = Vec::new();
        let mut written = HashSet::new();
        let mut taken = 0;
        let mut last = None;
        let mut failure = None;
        for event in events {
            // Without a position, the per-event path reports it.
            let Some(position) = event.position else {
                break;
            };
            let mut ctx = match ProcessingContext::in_page(&self.application, event, &written)
                .with_cause_decoded(self.upstream.mapper(), event)
            {
                Ok(ctx) => ctx,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            let notification = Notification::new(event, self.upstream.mapper());
            if let Err(source) = self.policy.process(&notification, &mut ctx) {
                failure = Some(SystemError::Policy {
                    process: self.name.clone(),
                    upstream: self.upstream.name().to_owned(),
                    position,
                    source,
                });
                break;
            }
            if ctx.stale.load(Ordering::Relaxed) {
                break;
            }
            // A competing batch ends when a heartbeat is due, so that it commits while its
            // lease is held (a lease expires by time even when nobody takes it over).
            if taken > 0 && self.competing.as_ref().is_some_and(Membership::due) {
                break;
            }
            let (new, due) = ctx.into_parts();
            written.extend(new.iter().map(|a| a.stream_id.clone()));
            appends.extend(new);
            snapshots.extend(due);
            taken += 1;
            last = Some(position);
        }
        let Some(position) = last else {
            // The first event failed (its error policy decides a policy's failure) or would
            // see stale state (it runs alone).
            return match failure {
                Some(error @ SystemError::Policy { .. }) => {
                    let tracked = self.tracked_for(route)?;
                    self.process_after(events[0], route, tracked, Some(error))
                        .map(|_| 1)
                }
                Some(error) => Err(error),
                None => {
                    let tracked = self.tracked_for(route)?;
                    self.process_after(events[0], route, tracked, None)
                        .map(|_| 1)
                }
            };
        };
        // The record covers the whole page, so that a page of another instance that
        // overlaps it cannot commit too.
        let first = events[0].position.unwrap_or(position);
        let tracking = route.tracking(first, position);
        match self
            .application
            .event_store()
            .commit(&appends, Some(&tracking), snapshots)
        {
            Ok(saved) => {
                let events = saved.positions.len();
                self.publish(appends, &saved.positions);
                self.settle(route, position, Processed::Committed { events });
            }
            // Conflicts, positions tracked meanwhile, store errors: one event at a time, as
            // without batching, so the event at fault is the one reported.
            Err(_) => {
                for event in &events[..taken] {
                    let tracked = self.tracked_for(route)?;
                    if self.process_after(event, route, tracked, None)? == Processed::Fenced {
                        return Ok(events.len());
                    }
                }
            }
        }
        match failure {
            // The event after the committed ones failed its policy: its error policy decides
            // (retry, stop or park), as without batching.
            Some(error @ SystemError::Policy { .. }) if taken < events.len() => {
                let tracked = self.tracked_for(route)?;
                self.process_after(events[taken], route, tracked, Some(error))
                    .map(|_| taken + 1)
            }
            Some(error) => Err(error),
            None => Ok(taken),
        }
    }

    /// Pulls until the upstream log has no more events; returns how many were read.
    ///
    /// # Errors
    /// As [`ProcessApplication::pull`]; the events before the failing one stay committed.
    pub fn run_until_caught_up(&mut self) -> Result<u64, SystemError> {
        catch_up(self.page_size, || self.pull())
    }

    /// Runs the policy on one upstream event and commits its events with the tracking record
    /// in one transaction. Events are processed in position order, so an event at or below
    /// the last tracked position counts as processed and is skipped, whether that is found
    /// before the policy runs or at commit time (a competing instance got there first).
    ///
    /// # Errors
    /// [`SystemError::Policy`], [`SystemError::Conflict`] or [`SystemError::Store`]; nothing
    /// of this event is written then.
    ///
    /// A competing instance processes only the events of the partitions it leases, and
    /// returns [`Processed::Fenced`] for the others.
    pub fn process(&mut self, event: &StoredEvent) -> Result<Processed, SystemError> {
        if self.competing.is_some() {
            self.heartbeat_if_due()?;
            return match self.route(event, 0) {
                Some((route, tracked)) => self.process_after(event, &route, tracked, None),
                None => Ok(Processed::Fenced),
            };
        }
        let tracked = self.position()?;
        let route = self.single_route();
        self.process_after(event, &route, tracked, None)
    }

    /// The position tracked for `route`, read from the store.
    fn tracked_for(&self, route: &Route) -> Result<u64, SystemError> {
        match (route.partition, &self.competing) {
            (Some(partition), Some(m)) => {
                let before = self.tracked_at(self.upstream.name())?;
                self.partition_position(partition, m.config().partitions(), before)
            }
            _ => self.tracked_at(&route.tracking),
        }
    }

    /// [`Self::process`] under the [`ErrorPolicy`], with the tracked position known to the
    /// caller, and maybe a first failed attempt made already (by a batch).
    fn process_after(
        &mut self,
        event: &StoredEvent,
        route: &Route,
        tracked: u64,
        failed: Option<SystemError>,
    ) -> Result<Processed, SystemError> {
        let processed = self.attempt(event, route, tracked, failed)?;
        self.settle(route, event.position.unwrap_or_default(), processed);
        Ok(processed)
    }

    /// [`Self::process_after`] before the outcome is noted.
    fn attempt(
        &mut self,
        event: &StoredEvent,
        route: &Route,
        tracked: u64,
        failed: Option<SystemError>,
    ) -> Result<Processed, SystemError> {
        let first_failed_at = Timestamp::now();
        let mut attempt = 0;
        let mut last = failed;
        loop {
            if let Some(error) = last.take() {
                attempt += 1;
                if attempt >= self.errors.attempts() {
                    // A store that failed under the policy is not a poison event: stop, and
                    // the next pull tries again.
                    return if self.errors.parks() && !store_failure(&error) {
                        self.park(event, route, &error, attempt, first_failed_at)
                    } else {
                        Err(error)
                    };
                }
                std::thread::sleep(self.errors.delay(attempt));
            }
            match self.process_once(event, route, tracked) {
                Err(error @ SystemError::Policy { .. }) => last = Some(error),
                other => return other,
            }
        }
    }

    /// Parks `event` after `attempts` failed attempts: its dead-letter record and the
    /// tracking record of its position commit together, so it is neither processed again
    /// nor lost.
    fn park(
        &mut self,
        event: &StoredEvent,
        route: &Route,
        error: &SystemError,
        attempts: u32,
        first_failed_at: Timestamp,
    ) -> Result<Processed, SystemError> {
        let position = event.position.unwrap_or_default();
        let reason = match error {
            SystemError::Policy { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let record = ParkedEvent::new(
            &self.name,
            self.upstream.name(),
            event,
            position,
            reason,
            attempts,
            first_failed_at,
        );
        let append = record.record().map_err(|e| self.store_error(e.into()))?;
        let tracking = route.tracking(position, position);
        match self
            .application
            .event_store()
            .commit(&[append], Some(&tracking), Vec::new())
        {
            Ok(_) => {
                tracing::warn!(follower = %self.name, upstream = %self.upstream.name(), position,
                    attempts, error = %record.error, "upstream event parked");
                crate::trace::metrics::parked(&self.name);
                Ok(Processed::Parked)
            }
            Err(PersistenceError::AlreadyTracked { .. }) => Ok(Processed::AlreadyTracked),
            Err(PersistenceError::Fenced { .. }) => Ok(Processed::Fenced),
            // A competing instance parked (or processed) it first: its record is what this
            // one conflicted with.
            Err(PersistenceError::Conflict(_)) if self.tracked_for(route)? >= position => {
                Ok(Processed::AlreadyTracked)
            }
            Err(e) => Err(self.store_error(e.into())),
        }
    }

    /// The events this process application parked and nobody retried or discarded yet,
    /// oldest first.
    ///
    /// # Errors
    /// [`SystemError::Store`] when the store fails or keeps no global log.
    pub fn parked(&self) -> Result<Vec<ParkedEvent>, SystemError> {
        parked::open_records(
            &**self.application.event_store().recorder(),
            &self.name,
            self.upstream.name(),
        )
        .map_err(|e| self.store_error(e.into()))
    }

    fn parked_at(&self, position: u64) -> Result<ParkedEvent, SystemError> {
        parked::open_record(
            &**self.application.event_store().recorder(),
            &self.name,
            self.upstream.name(),
            position,
        )
        .map_err(|e| self.store_error(e.into()))?
        .ok_or_else(|| {
            self.store_error(ApplicationError::Persistence(
                PersistenceError::EventNotFound {
                    stream_id: ParkedEvent::stream_id_for(
                        &self.name,
                        self.upstream.name(),
                        position,
                    ),
                    version: 1,
                },
            ))
        })
    }

    /// Runs the policy again on the parked event at upstream `position` (once, whatever the
    /// [`ErrorPolicy`]) and commits its new events with the record's closing event, in one
    /// transaction: of two retries at once, one commits and the other conflicts.
    ///
    /// # Errors
    /// [`SystemError::Policy`] when the policy fails again (the record stays open);
    /// [`SystemError::Store`] when no open record is at `position`, or the store fails;
    /// [`SystemError::Conflict`] when it was retried or discarded meanwhile.
    pub fn retry_parked(&mut self, position: u64) -> Result<Processed, SystemError> {
        let record = self.parked_at(position)?;
        let page = self.upstream.select(position, 1, &[])?;
        let Some(event) = page.into_iter().find(|e| e.position == Some(position)) else {
            return Err(SystemError::Upstream {
                upstream: self.upstream.name().to_owned(),
                source: PersistenceError::EventNotFound {
                    stream_id: record.stream_id,
                    version: record.version,
                },
            });
        };
        let mut ctx = ProcessingContext::new(&self.application, &event)
            .with_cause_decoded(self.upstream.mapper(), &event)?;
        let notification = Notification::new(&event, self.upstream.mapper());
        self.policy
            .process(&notification, &mut ctx)
            .map_err(|source| SystemError::Policy {
                process: self.name.clone(),
                upstream: self.upstream.name().to_owned(),
                position,
                source,
            })?;
        let (mut appends, snapshots) = ctx.into_parts();
        appends.push(record.close(RETRIED_TOPIC));
        self.commit_closing(&appends, snapshots, position)
    }

    /// Closes the parked event's record at upstream `position` without running the policy:
    /// the operator decided the event needs no effect.
    ///
    /// # Errors
    /// As [`ProcessApplication::retry_parked`], without the policy.
    pub fn discard_parked(&mut self, position: u64) -> Result<(), SystemError> {
        let record = self.parked_at(position)?;
        self.commit_closing(&[record.close(DISCARDED_TOPIC)], Vec::new(), position)
            .map(drop)
    }

    fn commit_closing(
        &self,
        appends: &[StreamAppend],
        snapshots: Vec<(Uuid, StoredSnapshot)>,
        position: u64,
    ) -> Result<Processed, SystemError> {
        match self
            .application
            .event_store()
            .commit(appends, None, snapshots)
        {
            Ok(saved) => {
                let events = saved.positions.len().saturating_sub(1);
                self.publish(appends.to_vec(), &saved.positions);
                Ok(Processed::Committed { events })
            }
            Err(PersistenceError::Conflict(conflict)) => Err(SystemError::Conflict {
                process: self.name.clone(),
                upstream: self.upstream.name().to_owned(),
                position,
                conflict,
            }),
            Err(e) => Err(self.store_error(e.into())),
        }
    }

    /// One attempt at an event, traced.
    fn process_once(
        &mut self,
        event: &StoredEvent,
        route: &Route,
        tracked: u64,
    ) -> Result<Processed, SystemError> {
        let span = Timed::new(tracing::debug_span!(
            "process",
            process = %self.name,
            position = event.position,
            stream_id = %event.stream_id,
            version = event.version,
            topic = %event.topic,
            events = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            error = tracing::field::Empty,
        ));
        let result = span.in_scope(|| self.process_traced(event, route, tracked));
        if let Ok(Processed::Committed { events }) = &result {
            span.record("events", *events);
        }
        span.finish(&result);
        result
    }

    fn process_traced(
        &mut self,
        event: &StoredEvent,
        route: &Route,
        tracked: u64,
    ) -> Result<Processed, SystemError> {
        let Some(position) = event.position else {
            return Err(SystemError::Upstream {
                upstream: self.upstream.name().to_owned(),
                source: PersistenceError::Corrupt {
                    detail: format!(
                        "event {} of stream `{}` has no position: only recorded events can be processed",
                        event.version, event.stream_id
                    ),
                },
            });
        };
        if tracked >= position {
            return Ok(Processed::AlreadyTracked);
        }
        let mut ctx = ProcessingContext::new(&self.application, event)
            .with_cause_decoded(self.upstream.mapper(), event)?;
        let notification = Notification::new(event, self.upstream.mapper());
        self.policy
            .process(&notification, &mut ctx)
            .map_err(|source| SystemError::Policy {
                process: self.name.clone(),
                upstream: self.upstream.name().to_owned(),
                position,
                source,
            })?;
        let (appends, snapshots) = ctx.into_parts();
        let tracking = route.tracking(position, position);
        match self
            .application
            .event_store()
            .commit(&appends, Some(&tracking), snapshots)
        {
            Ok(saved) => {
                self.publish(appends, &saved.positions);
                Ok(Processed::Committed {
                    events: saved.positions.len(),
                })
            }
            Err(PersistenceError::AlreadyTracked { .. }) => Ok(Processed::AlreadyTracked),
            Err(PersistenceError::Fenced { .. }) => Ok(Processed::Fenced),
            // A competing instance may have committed this position meanwhile, and its
            // events are what this commit conflicted with.
            Err(PersistenceError::Conflict(_)) if self.tracked_for(route)? >= position => {
                Ok(Processed::AlreadyTracked)
            }
            Err(PersistenceError::Conflict(conflict)) => Err(SystemError::Conflict {
                process: self.name.clone(),
                upstream: self.upstream.name().to_owned(),
                position,
                conflict,
            }),
            Err(error) => Err(self.store_error(error.into())),
        }
    }

    /// Publishes committed events on the downstream bus, so that followers of this process
    /// application wake up. Best effort: followers read the log, the bus only hurries them.
    fn publish(&self, appends: Vec<StreamAppend>, positions: &[u64]) {
        let bus = self.application.bus();
        if positions.is_empty() || !bus.has_subscribers() {
            return;
        }
        let mut events: Vec<StoredEvent> = appends.into_iter().flat_map(|a| a.events).collect();
        for (event, position) in events.iter_mut().zip(positions) {
            event.position = Some(*position);
        }
        // A failing subscriber does not undo the commit, and followers catch up from the log.
        let _ = bus.publish(&events);
    }

    fn store_error(&self, source: ApplicationError) -> SystemError {
        SystemError::Store {
            follower: self.name.clone(),
            source,
        }
    }
}

impl<P: Policy> Follower for ProcessApplication<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> Result<u64, SystemError> {
        ProcessApplication::position(self)
    }

    fn pull(&mut self) -> Result<usize, SystemError> {
        ProcessApplication::pull(self)
    }

    fn release(&mut self) -> Result<(), SystemError> {
        self.release_leases()
    }

    fn status(&self) -> FollowerStatus {
        let position = self.position().ok();
        // A competing instance is as far as its cursor (0 before its first page).
        let reached = match &self.competing {
            Some(m) if !m.held.is_empty() && self.cursor != u64::MAX => Some(self.cursor),
            Some(_) => None,
            None => position,
        };
        let lag = reached
            .zip(self.upstream.max_position().ok())
            .map(|(at, end)| end.saturating_sub(at));
        FollowerStatus {
            name: self.name.clone(),
            position,
            lag,
            partitions: self.partitions_held(),
            members: self.members().len(),
            fenced: self.competing.as_ref().map_or(0, |m| m.fenced),
            parked: self.parked().ok().map(|p| p.len()),
        }
    }
}

/// A dropped competing instance releases its leases (best effort), so that the others take
/// its partitions over at once.
impl<P> Drop for ProcessApplication<P> {
    fn drop(&mut self) {
        if let Some(membership) = &mut self.competing {
            if let Some(leases) = self.application.event_store().recorder().leases() {
                let _ = membership.release_all(leases);
            }
        }
    }
}

/// Whether a policy's error is its store failing (unavailable, busy, a conflict), which a
/// later pull may not meet again, rather than the event being unprocessable.
fn store_failure(error: &SystemError) -> bool {
    let SystemError::Policy { source, .. } = error else {
        return false;
    };
    if let Some(error) = source.downcast_ref::<ApplicationError>() {
        return match error {
            ApplicationError::Conflict(_) => true,
            ApplicationError::Persistence(e) => e.is_transient() || e.is_conflict(),
            _ => false,
        };
    }
    source
        .downcast_ref::<PersistenceError>()
        .is_some_and(|e| e.is_transient() || e.is_conflict())
}
