//! Compression of payloads with zlib (flate2, pure-Rust backend).

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use crate::persistence::{PersistenceError, Transcoder};

/// Format byte: the payload follows uncompressed (too small to gain from compression).
const RAW: u8 = 0x00;
/// Format byte: a zlib stream follows.
const ZLIB: u8 = 0x01;

/// Compresses payloads with zlib. Payloads smaller than [`Compression::min_size`] bytes, and
/// payloads that would not shrink, are stored as they are behind a marker byte.
///
/// Decompression is bounded: a payload that would inflate beyond
/// [`Compression::max_decoded_bytes`] (default 16 MiB,
/// [`Compression::DEFAULT_MAX_DECODED_BYTES`]) is a [`PersistenceError::LimitExceeded`], never
/// an unbounded allocation, so a hand-written "zip bomb" row (a few kilobytes that inflate to
/// gigabytes) cannot exhaust memory. Encoding refuses the same sizes, so whatever this
/// transcoder stores it can read back. The bound is on the decoded JSON, which is larger than
/// the stored bytes that [`Limits::max_event_bytes`](crate::persistence::Limits) bounds, and it
/// applies to snapshot states too: 16 times the default event limit leaves room for both.
///
/// Decoding also accepts plain JSON written before compression was turned on (a payload whose
/// first byte is `{`, `[` or `"`), so compression can be enabled on an existing store; the
/// [`Migration`](crate::application::Migration) rewrites old payloads when wanted.
///
/// ```
/// use eventsourcing::persistence::{Compression, Transcoder};
///
/// let zlib = Compression::new();
/// let json = br#"{"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#.to_vec();
/// let stored = zlib.encode(json.clone())?;
/// assert!(stored.len() < json.len());
/// assert_eq!(zlib.decode(stored)?, json);
/// # Ok::<(), eventsourcing::PersistenceError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    level: u32,
    min_size: usize,
    max_decoded: usize,
}

impl Default for Compression {
    fn default() -> Self {
        Self::new()
    }
}

impl Compression {
    /// The default bound on a decoded payload: 16 MiB.
    pub const DEFAULT_MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

    /// zlib at the default level (6), for payloads of 128 bytes or more, decoding at most
    /// [`Compression::DEFAULT_MAX_DECODED_BYTES`].
    #[must_use]
    pub const fn new() -> Self {
        Self {
            level: 6,
            min_size: 128,
            max_decoded: Self::DEFAULT_MAX_DECODED_BYTES,
        }
    }

    /// Sets the largest payload this transcoder encodes or decodes, in bytes (uncompressed).
    #[must_use]
    pub const fn max_decoded_bytes(mut self, bytes: usize) -> Self {
        self.max_decoded = bytes;
        self
    }

    fn too_large(&self, actual: usize) -> PersistenceError {
        PersistenceError::LimitExceeded {
            what: "uncompressed payload size in bytes (counted up to the limit)",
            limit: u64::try_from(self.max_decoded).unwrap_or(u64::MAX),
            actual: u64::try_from(actual).unwrap_or(u64::MAX),
        }
    }

    /// Sets the compression level, from 0 (none) to 9 (smallest); values above 9 mean 9.
    #[must_use]
    pub const fn level(mut self, level: u32) -> Self {
        self.level = if level > 9 { 9 } else { level };
        self
    }

    /// Payloads shorter than this are stored uncompressed (still behind the marker byte).
    #[must_use]
    pub const fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }
}

fn failed(what: &str, error: &std::io::Error) -> PersistenceError {
    PersistenceError::Transcode {
        reason: format!("zlib {what} failed: {error}"),
    }
}

impl Transcoder for Compression {
    fn encode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        if data.len() > self.max_decoded {
            return Err(self.too_large(data.len()));
        }
        if data.len() >= self.min_size {
            let mut out = Vec::with_capacity(data.len() / 2 + 16);
            out.push(ZLIB);
            let mut encoder = ZlibEncoder::new(out, flate2::Compression::new(self.level));
            encoder
                .write_all(&data)
                .map_err(|e| failed("compression", &e))?;
            let out = encoder.finish().map_err(|e| failed("compression", &e))?;
            if out.len() < data.len() + 1 {
                return Ok(out);
            }
        }
        let mut out = Vec::with_capacity(data.len() + 1);
        out.push(RAW);
        out.extend_from_slice(&data);
        Ok(out)
    }

    fn decode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        match data.first() {
            Some(&RAW) => Ok(data[1..].to_vec()),
            Some(&ZLIB) => {
                let bound = self.max_decoded;
                let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(bound));
                // One byte past the bound tells "too large" from "exactly at the bound".
                let limit = u64::try_from(bound).unwrap_or(u64::MAX).saturating_add(1);
                ZlibDecoder::new(&data[1..])
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(|e| failed("decompression", &e))?;
                if out.len() > bound {
                    return Err(self.too_large(out.len()));
                }
                Ok(out)
            }
            // Plain JSON stored before compression was enabled.
            Some(b'{' | b'[' | b'"') => Ok(data),
            Some(other) => Err(PersistenceError::Transcode {
                reason: format!("unknown compression format byte {other:#04x}"),
            }),
            None => Err(PersistenceError::Transcode {
                reason: "empty payload: no compression format byte".into(),
            }),
        }
    }
}
