//! `ApplicationBuilder`: where events are stored, transcoders, snapshots, limits and the bus.

use std::sync::Arc;

use super::app::Application;
use super::bus::EventBus;
use super::config::StoreUrl;
use super::error::ApplicationError;
use super::event_store::EventStore;
use super::snapshots::SnapshotPolicy;
use crate::domain::{validate_registry, Entity};
use crate::persistence::{Limits, Mapper, SnapshotRecorder, Storage, Transcoder};

/// Whether an entity type has a snapshot codec.
type HasCodec = fn() -> bool;

/// Builds an [`Application`].
#[derive(Default)]
pub struct ApplicationBuilder {
    url: Option<StoreUrl>,
    recorder: Option<Arc<dyn Storage>>,
    snapshots: Option<Arc<dyn SnapshotRecorder>>,
    mapper: Mapper,
    bus: Option<EventBus>,
    policy: SnapshotPolicy,
    /// Entities given an interval, with a check that they have a snapshot codec.
    snapshotted: Vec<(&'static str, HasCodec)>,
    limits: Limits,
}

impl std::fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("url", &self.url)
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl ApplicationBuilder {
    /// Stores events at `url` (`memory:`, `sqlite://PATH`, `postgres://...`).
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unsupported URL.
    pub fn url(mut self, url: &str) -> Result<Self, ApplicationError> {
        self.url = Some(url.parse()?);
        Ok(self)
    }

    /// Stores events at the URL in `EVENTSOURCING_URL`, or the default SQLite file.
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unsupported URL.
    pub fn url_from_env(mut self) -> Result<Self, ApplicationError> {
        self.url = Some(StoreUrl::from_env()?);
        Ok(self)
    }

    /// Stores events in a recorder built by the caller, without keeping snapshots there;
    /// snapshots are kept only if [`ApplicationBuilder::snapshot_recorder`] is given too,
    /// after this call (this call forgets any snapshot store given before).
    #[must_use]
    pub fn recorder(mut self, recorder: Arc<dyn Storage>) -> Self {
        self.recorder = Some(recorder);
        self.snapshots = None;
        self
    }

    /// Stores events and snapshots in a [`Storage`] built by the caller (what
    /// [`StoreUrl::open_recorder`] returns).
    #[must_use]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        let snapshots: Arc<dyn SnapshotRecorder> = storage.clone();
        self.recorder = Some(storage);
        self.snapshots = Some(snapshots);
        self
    }

    /// Keeps snapshots in `snapshots`, beside an event-only [`ApplicationBuilder::recorder`].
    #[must_use]
    pub fn snapshot_recorder(mut self, snapshots: Arc<dyn SnapshotRecorder>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Snapshots entities of type `T` automatically every `events` events (0: never), which
    /// overrides the entity's own [`SnapshotCodec::every`](crate::domain::SnapshotCodec).
    /// [`ApplicationBuilder::build`] fails if `T` has no snapshot codec.
    #[must_use]
    pub fn snapshot_every<T: Entity>(mut self, events: u64) -> Self {
        self.policy = self.policy.every::<T>(events);
        self.snapshotted
            .push((T::NAME, || T::snapshot_codec().is_some()));
        self
    }

    /// Snapshots every entity type that has a snapshot codec but no interval of its own every
    /// `events` events (0: never).
    #[must_use]
    pub fn snapshot_default_every(mut self, events: u64) -> Self {
        self.policy = self.policy.default_every(events);
        self
    }

    /// Adds the transcoders configured in the environment: compression when
    /// `EVENTSOURCING_COMPRESSION` is `zlib` (or `deflate`), then AES-256-GCM encryption when
    /// `EVENTSOURCING_CIPHER_KEY` holds a key (32 bytes, base64 or 64 hex digits), and
    /// encryption of user metadata values with the same key when
    /// `EVENTSOURCING_ENCRYPT_METADATA` is `true` (see
    /// `Mapper::with_metadata_encryption`).
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unknown compression name, a malformed key, or a
    /// setting whose cargo feature (`compression`, `encryption`) is not compiled in.
    pub fn transcoders_from_env(self) -> Result<Self, ApplicationError> {
        self.transcoders_from(|name| std::env::var(name).ok())
    }

    /// As [`ApplicationBuilder::transcoders_from_env`], reading settings through `lookup`
    /// (for configuration that is not in the process environment).
    ///
    /// # Errors
    /// As [`ApplicationBuilder::transcoders_from_env`].
    pub fn transcoders_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ApplicationError> {
        use crate::persistence::transcoders::{
            CIPHER_KEY_ENV, COMPRESSION_ENV, ENCRYPT_METADATA_ENV,
        };
        let setting = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(compression) = setting(COMPRESSION_ENV) {
            match compression.trim().to_ascii_lowercase().as_str() {
                "none" | "off" => {}
                "zlib" | "deflate" => self = self.compressed()?,
                other => {
                    return Err(ApplicationError::Config(format!(
                        "{COMPRESSION_ENV}=`{other}`: expected `zlib` or `none`"
                    )))
                }
            }
        }
        let metadata = match setting(ENCRYPT_METADATA_ENV) {
            None => false,
            Some(flag) => match flag.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                other => {
                    return Err(ApplicationError::Config(format!(
                        "{ENCRYPT_METADATA_ENV}=`{other}`: expected `true` or `false`"
                    )))
                }
            },
        };
        match setting(CIPHER_KEY_ENV) {
            Some(key) => self = self.encrypted_with(&key, metadata)?,
            None if metadata => {
                return Err(ApplicationError::Config(format!(
                    "{ENCRYPT_METADATA_ENV} is set, but {CIPHER_KEY_ENV} holds no key"
                )))
            }
            None => {}
        }
        Ok(self)
    }

    #[cfg(feature = "compression")]
    fn compressed(self) -> Result<Self, ApplicationError> {
        Ok(self.transcoder(Arc::new(crate::persistence::Compression::new())))
    }

    #[cfg(not(feature = "compression"))]
    #[allow(clippy::unused_self)]
    fn compressed(self) -> Result<Self, ApplicationError> {
        Err(ApplicationError::Config(
            "compression is configured, but this build lacks the `compression` feature".into(),
        ))
    }

    #[cfg(feature = "encryption")]
    fn encrypted_with(self, key: &str, metadata: bool) -> Result<Self, ApplicationError> {
        let key = crate::persistence::CipherKey::parse(key).map_err(|e| match e {
            crate::persistence::PersistenceError::Config(reason) => {
                ApplicationError::Config(reason)
            }
            other => ApplicationError::from(other),
        })?;
        let cipher = Arc::new(crate::persistence::Encryption::new(&key));
        let this = self.transcoder(cipher.clone());
        Ok(if metadata {
            this.metadata_encryption(cipher)
        } else {
            this
        })
    }

    #[cfg(not(feature = "encryption"))]
    #[allow(clippy::unused_self)]
    fn encrypted_with(self, _key: &str, _metadata: bool) -> Result<Self, ApplicationError> {
        Err(ApplicationError::Config(
            "a cipher key is configured, but this build lacks the `encryption` feature".into(),
        ))
    }

    /// Adds a payload transcoder (compression, encryption), applied in the order added.
    #[must_use]
    pub fn transcoder(mut self, transcoder: Arc<dyn Transcoder>) -> Self {
        self.mapper = self.mapper.with_transcoder(transcoder);
        self
    }

    /// Encrypts the values of the events' user metadata with `cipher` (see
    /// [`Mapper::with_metadata_encryption`](crate::persistence::Mapper::with_metadata_encryption)
    /// for the format and for what stays visible). Independent of the payload transcoders:
    /// give the same [`Encryption`](crate::persistence::Encryption) to both to use one key.
    #[cfg(feature = "encryption")]
    #[must_use]
    pub fn metadata_encryption(mut self, cipher: Arc<crate::persistence::Encryption>) -> Self {
        self.mapper = self.mapper.with_metadata_encryption(cipher);
        self
    }

    /// Enforces `limits` on every save (default: [`Limits::default`], 1 MiB a payload and
    /// 10,000 events a save).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Publishes saved events on this bus instead of a private one.
    #[must_use]
    pub fn bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Validates the topic registry and opens the store.
    ///
    /// # Errors
    /// Registry, configuration or backend errors.
    pub fn build(self) -> Result<Application, ApplicationError> {
        validate_registry()?;
        if let Some((entity, _)) = self.snapshotted.iter().find(|(_, has_codec)| !has_codec()) {
            return Err(ApplicationError::NoSnapshotCodec { entity });
        }
        let store = match (self.recorder, self.url) {
            (Some(recorder), _) => {
                let store = EventStore::with_mapper(recorder, self.mapper);
                match self.snapshots {
                    Some(snapshots) => store.with_snapshot_recorder(snapshots),
                    None => store,
                }
            }
            (None, url) => {
                let url = match url {
                    Some(url) => url,
                    None => StoreUrl::from_env()?,
                };
                let store = EventStore::with_storage(url.open_recorder()?, self.mapper);
                match self.snapshots {
                    Some(snapshots) => store.with_snapshot_recorder(snapshots),
                    None => store,
                }
            }
        };
        Ok(Application {
            store: store
                .with_snapshot_policy(self.policy)
                .with_limits(self.limits),
            bus: self.bus.unwrap_or_default(),
        })
    }
}

/// The constructors that go through the builder (here, so that `app.rs` need not know it).
impl Application {
    /// Opens the store named by `EVENTSOURCING_URL`, or the default SQLite file
    /// (`eventsourcing.db` in the working directory) when the variable is unset, with the
    /// compression and encryption configured in the environment
    /// (see [`ApplicationBuilder::transcoders_from_env`]).
    ///
    /// # Errors
    /// Configuration or backend errors, or a registry problem (duplicate topic, missing
    /// upcaster) found by [`validate_registry`](crate::domain::validate_registry).
    pub fn open_default() -> Result<Self, ApplicationError> {
        Self::builder()
            .url_from_env()?
            .transcoders_from_env()?
            .build()
    }

    /// Opens the store named by `url`: `memory:`, `sqlite://PATH` or `postgres://...`, with
    /// the compression and encryption configured in the environment.
    ///
    /// # Errors
    /// As [`Application::open_default`].
    pub fn open(url: &str) -> Result<Self, ApplicationError> {
        Self::builder().url(url)?.transcoders_from_env()?.build()
    }

    /// A builder for custom configurations (transcoders, a given recorder, a shared bus).
    #[must_use]
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::default()
    }
}
