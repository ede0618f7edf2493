//! Topics: the stable names under which events are stored, and the registry that resolves them.
//!
//! Every event type lists its topics in [`TopicRegistration`]s. `#[entity]` and
//! `#[derive(DomainEvent)]` submit them to a global list through `inventory`, so a binary knows
//! every event type linked into it without a central list. Where life-before-main is not
//! available (some embedded or WebAssembly targets), or when an events crate is linked but never
//! referenced, call [`register`] explicitly.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::error::DomainError;
use super::event::DomainEvent;

/// Converts a JSON value written at one schema version into the next version's shape.
pub type UpcastFn = fn(serde_json::Value) -> Result<serde_json::Value, String>;

/// One step of an upcasting chain: from `from_version` to `from_version + 1`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    /// The version this step reads.
    pub from_version: u32,
    /// The conversion.
    pub upcast: UpcastFn,
}

impl std::fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upcaster")
            .field("from_version", &self.from_version)
            .finish_non_exhaustive()
    }
}

/// The registration of one topic: what is stored, at which schema version, under which older
/// names, and how older versions are brought up to date.
#[derive(Debug, Clone, Copy)]
pub struct TopicRegistration {
    /// The canonical topic, e.g. `"Dog.TrickAdded"`.
    pub topic: &'static str,
    /// The entity (or family) name, e.g. `"Dog"`.
    pub entity: &'static str,
    /// The event name, e.g. `"TrickAdded"`.
    pub event: &'static str,
    /// The Rust type that decodes this topic.
    pub type_name: &'static str,
    /// The schema version written by this code (from 1).
    pub version: u32,
    /// Older topics that resolve to this one (renamed events or entities).
    pub aliases: &'static [&'static str],
    /// Steps from each older version to the next.
    pub upcasters: &'static [Upcaster],
    /// Whether the event creates its entity.
    pub creates: bool,
}

impl TopicRegistration {
    /// Brings `value`, written at `from_version`, up to [`TopicRegistration::version`].
    ///
    /// # Errors
    /// [`DomainError::FutureVersion`], [`DomainError::MissingUpcaster`] or
    /// [`DomainError::Upcast`].
    pub fn upcast(
        &self,
        from_version: u32,
        mut value: serde_json::Value,
    ) -> Result<serde_json::Value, DomainError> {
        if from_version > self.version {
            return Err(DomainError::FutureVersion {
                topic: self.topic.to_owned(),
                stored_version: from_version,
                current_version: self.version,
            });
        }
        for version in from_version..self.version {
            let step = self.upcaster_from(version)?;
            value = (step.upcast)(value).map_err(|reason| DomainError::Upcast {
                topic: self.topic.to_owned(),
                from_version: version,
                reason,
            })?;
        }
        Ok(value)
    }

    fn upcaster_from(&self, version: u32) -> Result<&Upcaster, DomainError> {
        self.upcasters
            .iter()
            .find(|u| u.from_version == version)
            .ok_or_else(|| DomainError::MissingUpcaster {
                topic: self.topic.to_owned(),
                from_version: version,
                current_version: self.version,
            })
    }

    /// Checks that every version from 1 up to the current one has an upcaster.
    ///
    /// # Errors
    /// [`DomainError::MissingUpcaster`] for the first gap.
    pub fn validate(&self) -> Result<(), DomainError> {
        (1..self.version).try_for_each(|v| self.upcaster_from(v).map(|_| ()))
    }
}

/// What `inventory` collects: one entry per event type.
#[derive(Debug)]
pub struct EventTypeRegistration {
    /// The Rust type name, for error messages.
    pub type_name: &'static str,
    /// The type's topics.
    pub topics: fn() -> &'static [TopicRegistration],
}

inventory::collect!(EventTypeRegistration);

/// How an event type lists its registrations.
type Registrations = fn() -> &'static [TopicRegistration];

static EXPLICIT: RwLock<Vec<Registrations>> = RwLock::new(Vec::new());
static INDEX: RwLock<Option<Arc<Index>>> = RwLock::new(None);

/// Registers an event type explicitly, for targets where `inventory` cannot run constructors
/// or for an events crate the binary links but never references. Registering a type twice is
/// harmless.
pub fn register<E: DomainEvent>() {
    let mut explicit = EXPLICIT.write().unwrap_or_else(PoisonError::into_inner);
    let f: fn() -> &'static [TopicRegistration] = E::registrations;
    if !explicit.iter().any(|g| std::ptr::eq(g(), f())) {
        explicit.push(f);
    }
    drop(explicit);
    *INDEX.write().unwrap_or_else(PoisonError::into_inner) = None;
}

/// A snapshot of every registration known to this process.
#[derive(Debug, Default)]
struct Index {
    /// Topic or alias to registration; the first wins, duplicates are kept apart.
    by_topic: BTreeMap<&'static str, &'static TopicRegistration>,
    duplicates: Vec<(&'static str, &'static str, &'static str)>,
    all: Vec<&'static TopicRegistration>,
}

fn index() -> Arc<Index> {
    if let Some(index) = INDEX
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(index);
    }
    let mut sources: Vec<&'static [TopicRegistration]> = inventory::iter::<EventTypeRegistration>
        .into_iter()
        .map(|r| (r.topics)())
        .collect();
    for f in EXPLICIT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let regs = f();
        if !sources.iter().any(|s| std::ptr::eq(*s, regs)) {
            sources.push(regs);
        }
    }
    let mut index = Index::default();
    for registration in sources.into_iter().flatten() {
        index.all.push(registration);
        let names = std::iter::once(registration.topic).chain(registration.aliases.iter().copied());
        for name in names {
            match index.by_topic.get(name) {
                Some(first) => {
                    index
                        .duplicates
                        .push((name, first.type_name, registration.type_name))
                }
                None => {
                    index.by_topic.insert(name, registration);
                }
            }
        }
    }
    let index = Arc::new(index);
    *INDEX.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&index));
    index
}

/// Resolves a topic (or an alias) to its registration: the seed's "function to resolve a topic
/// into a domain event class".
///
/// # Errors
/// [`DomainError::UnknownTopic`] listing every known topic.
pub fn resolve_topic(topic: &str) -> Result<&'static TopicRegistration, DomainError> {
    let index = index();
    index
        .by_topic
        .get(topic)
        .copied()
        .ok_or_else(|| DomainError::UnknownTopic {
            topic: topic.to_owned(),
            known: index
                .all
                .iter()
                .map(|r| r.topic.to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
}

/// Every registered topic, sorted.
#[must_use]
pub fn known_topics() -> Vec<&'static str> {
    let mut topics: Vec<&'static str> = index().all.iter().map(|r| r.topic).collect();
    topics.sort_unstable();
    topics.dedup();
    topics
}

/// Checks the whole registry: no topic or alias claimed twice, and every versioned topic has an
/// upcaster from each older version. Applications call this when they open, so that a missing
/// upcaster is found at start-up rather than at the first old event in production.
///
/// # Errors
/// The first problem found, as [`DomainError::DuplicateTopic`] or
/// [`DomainError::MissingUpcaster`].
pub fn validate_registry() -> Result<(), DomainError> {
    let index = index();
    if let Some(&(topic, first, second)) = index.duplicates.first() {
        return Err(DomainError::DuplicateTopic {
            topic: topic.to_owned(),
            first,
            second,
        });
    }
    index.all.iter().try_for_each(|r| r.validate())
}
