//! The persistence layer: stored events, the mapper, the recorder traits and their backends.

mod error;
mod mapper;
mod memory;
mod recorder;
mod stored_event;
pub mod transcoders;

pub use error::{BoxError, PersistenceError};
pub use mapper::{Mapper, Transcoder};
pub use memory::MemoryRecorder;
pub use recorder::{
    validate_batch, AggregateRecorder, ApplicationRecorder, ProcessRecorder, SnapshotRecorder,
    Storage,
};
pub use stored_event::{
    EventQuery, NotificationQuery, StoredEvent, StoredSnapshot, StreamAppend, Tracking,
};
#[cfg(feature = "compression")]
pub use transcoders::Compression;
#[cfg(feature = "encryption")]
pub use transcoders::{CipherKey, Encryption};
