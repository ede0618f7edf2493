//! Payload transcoders: compression and encryption of event and snapshot payloads.
//!
//! Both are [`Transcoder`](super::Transcoder)s added to the [`Mapper`](super::Mapper), so event
//! payloads and snapshot states go through them alike. Each writes a format byte in front of
//! its output, so that decoding knows what it reads and the format can evolve:
//!
//! | transcoder | feature | format |
//! |---|---|---|
//! | `Compression` | `compression` | `0x00` + bytes (stored as is, too small to gain), or `0x01` + zlib stream |
//! | `Encryption` | `encryption` | `0x02` + 4-byte key id + 12-byte random nonce + AES-256-GCM ciphertext and tag, the row as associated data (`0x01` + nonce + ciphertext, no associated data, still read) |
//! | user metadata values (`Mapper::with_metadata_encryption`) | `encryption` | `es-aes256gcm:` + base64 (no padding) of the `0x02` format, the event and the entry's key as associated data |
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
pub(crate) use encryption::{metadata_key_id, sealed_metadata_value, MetadataEntry};
#[cfg(feature = "encryption")]
pub use encryption::{CipherKey, Encryption, ENCRYPTED_METADATA_PREFIX};

/// The environment variable that turns compression on: `zlib` (or `deflate`), or `none`.
pub const COMPRESSION_ENV: &str = "EVENTSOURCING_COMPRESSION";

/// The environment variable holding the AES-256 key: 32 bytes as base64 or as 64 hex digits.
pub const CIPHER_KEY_ENV: &str = "EVENTSOURCING_CIPHER_KEY";

/// The environment variable that, set to `true` (or `1`, `yes`, `on`) beside
/// [`CIPHER_KEY_ENV`], encrypts user metadata values with the same key.
pub const ENCRYPT_METADATA_ENV: &str = "EVENTSOURCING_ENCRYPT_METADATA";
