//! Payload transcoders: compression and encryption of event and snapshot payloads.
//!
//! Both are [`Transcoder`](super::Transcoder)s added to the [`Mapper`](super::Mapper), so event
//! payloads and snapshot states go through them alike. Each writes a format byte in front of
//! its output, so that decoding knows what it reads and the format can evolve:
//!
//! | transcoder | feature | format |
//! |---|---|---|
//! | `Compression` | `compression` | `0x00` + bytes (stored as is, too small to gain), or `0x01` + zlib stream |
//! | `Encryption` | `encryption` | `0x01` + 12-byte random nonce + AES-256-GCM ciphertext and tag |
//!
//! Add compression before encryption (encrypted bytes do not compress):
//! [`crate::ApplicationBuilder::transcoders_from_env`] does so.

#[cfg(feature = "compression")]
mod compression;
#[cfg(feature = "encryption")]
mod encryption;

#[cfg(feature = "compression")]
pub use compression::Compression;
#[cfg(feature = "encryption")]
pub use encryption::{CipherKey, Encryption};

/// The environment variable that turns compression on: `zlib` (or `deflate`), or `none`.
pub const COMPRESSION_ENV: &str = "EVENTSOURCING_COMPRESSION";

/// The environment variable holding the AES-256 key: 32 bytes as base64 or as 64 hex digits.
pub const CIPHER_KEY_ENV: &str = "EVENTSOURCING_CIPHER_KEY";
