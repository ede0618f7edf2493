//! The persistence layer: stored events, the mapper, the recorder traits and their backends.

#[cfg(feature = "cassandra")]
pub mod cassandra;
mod error;
pub mod inspect;
mod lease;
mod limits;
mod listener;
mod mapper;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod recorder;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod stored_event;
pub mod transcoders;

#[cfg(feature = "cassandra")]
pub use cassandra::{CassandraConfig, CassandraRecorder};
pub use error::{BoxError, Conflict, PersistenceError};
pub use lease::{fenced, validate_lease, Lease, LeaseRecorder, LeaseState};
pub use limits::Limits;
pub use listener::CommitListener;
pub use mapper::{Mapper, PayloadContext, PayloadKind, Transcoder};
pub use memory::MemoryRecorder;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresRecorder};
pub use recorder::{
    check_not_tracked, validate_append, validate_batch, validate_text, validate_tracking,
    AdminRecorder, AggregateRecorder, ApplicationRecorder, Layered, ProcessRecorder, RecorderLayer,
    SnapshotRecorder, Storage, MAX_IDENTIFIER_BYTES,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteRecorder, Synchronous};
pub use stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredEventRef, StoredSnapshot, StreamAppend,
    Tracking,
};
#[cfg(feature = "compression")]
pub use transcoders::Compression;
#[cfg(feature = "encryption")]
pub use transcoders::{CipherKey, Encryption, ENCRYPTED_METADATA_PREFIX};
