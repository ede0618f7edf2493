//! Application-level encryption of payloads with AES-256-GCM (RustCrypto `aes-gcm`).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;

use crate::persistence::{PayloadContext, PersistenceError, Transcoder};

/// Format byte of version 1: nonce and ciphertext follow, no associated data. Still read;
/// no longer written by the mapper.
const V1: u8 = 0x01;
/// Format byte of version 2: a 4-byte key id, the nonce and the ciphertext follow; the row's
/// [`PayloadContext`] is the associated data.
const V2: u8 = 0x02;
/// Bytes of a key id.
const KEY_ID_LEN: usize = 4;
/// Bytes of an AES-GCM nonce.
const NONCE_LEN: usize = 12;

/// A 256-bit AES key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct CipherKey([u8; 32]);

impl std::fmt::Debug for CipherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CipherKey(..)")
    }
}

impl CipherKey {
    /// A key from 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key, e.g. to print once and keep in configuration.
    ///
    /// # Errors
    /// [`PersistenceError::Transcode`] when the system has no randomness.
    pub fn generate() -> Result<Self, PersistenceError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| PersistenceError::Transcode {
            reason: format!("no randomness for a key: {e}"),
        })?;
        Ok(Self(bytes))
    }

    /// Parses a key written as 64 hex digits or as base64 (standard alphabet, padded or not) of
    /// 32 bytes, as kept in [`CIPHER_KEY_ENV`](super::CIPHER_KEY_ENV).
    ///
    /// # Errors
    /// [`PersistenceError::Config`] when the text is neither, or not 32 bytes long. The message
    /// never repeats the text.
    pub fn parse(text: &str) -> Result<Self, PersistenceError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .ok()
        };
        let bytes = bytes.ok_or_else(|| {
            PersistenceError::Config("the cipher key is neither 64 hex digits nor base64".into())
        })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            PersistenceError::Config(format!(
                "the cipher key has {} bytes; AES-256 needs 32",
                b.len()
            ))
        })?;
        Ok(Self(bytes))
    }

    /// The key as base64, the form [`CipherKey::parse`] reads.
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// Encrypts payloads with AES-256-GCM: a fresh random 96-bit nonce for every payload, stored
/// in front of the ciphertext, behind a format byte. GCM authenticates what it encrypts, so a
/// wrong key or changed bytes give [`PersistenceError::Transcode`], never garbage.
///
/// Through the mapper (format 2), the row a payload belongs to (stream id, version, topic, and
/// whether it is an event or a snapshot: [`PayloadContext`]) is authenticated too: a payload
/// copied onto another row fails to decrypt there. The ciphertext names its key by a 4-byte
/// key id, so a store encrypted under several keys (a rotation half done) is read with
/// [`Encryption::with_previous_key`]. Format 1 payloads (no associated data, no key id) stay
/// readable. What stays visible in the store: stream ids, versions, topics, timestamps,
/// positions, event, causation and correlation ids, and the user metadata unless
/// [`Mapper::with_metadata_encryption`](crate::persistence::Mapper::with_metadata_encryption)
/// encrypts its values too (then only the map's keys stay visible).
///
/// ```
/// use eventsourcing::persistence::{CipherKey, Encryption, Transcoder};
///
/// let key = CipherKey::generate()?;
/// let cipher = Encryption::new(&key);
/// let stored = cipher.encode(br#"{"secret":42}"#.to_vec())?;
/// assert_eq!(cipher.decode(stored.clone())?, br#"{"secret":42}"#);
///
/// let other = Encryption::new(&CipherKey::generate()?);
/// assert!(other.decode(stored).is_err());
/// # Ok::<(), eventsourcing::PersistenceError>(())
/// ```
#[derive(Clone)]
pub struct Encryption {
    cipher: Aes256Gcm,
    key_id: [u8; KEY_ID_LEN],
    /// Keys of earlier rotations, read but never written.
    previous: Vec<(Aes256Gcm, [u8; KEY_ID_LEN])>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encryption(AES-256-GCM)")
    }
}

impl Encryption {
    /// Encryption with `key`.
    #[must_use]
    pub fn new(key: &CipherKey) -> Self {
        let cipher = Aes256Gcm::new(&key.0.into());
        Self {
            key_id: key_id(&cipher),
            cipher,
            previous: Vec::new(),
        }
    }

    /// Also reads payloads encrypted under `key` (an earlier key of a rotation); new payloads
    /// are encrypted under the key given to [`Encryption::new`].
    #[must_use]
    pub fn with_previous_key(mut self, key: &CipherKey) -> Self {
        let cipher = Aes256Gcm::new(&key.0.into());
        let id = key_id(&cipher);
        self.previous.push((cipher, id));
        self
    }

    /// The cipher whose key id is `id`.
    fn cipher_of(&self, id: &[u8]) -> Option<&Aes256Gcm> {
        if id == self.key_id {
            return Some(&self.cipher);
        }
        self.previous
            .iter()
            .find(|(_, previous)| previous == id)
            .map(|(cipher, _)| cipher)
    }

    fn nonce() -> Result<[u8; NONCE_LEN], PersistenceError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| PersistenceError::Transcode {
            reason: format!("no randomness for a nonce: {e}"),
        })?;
        Ok(nonce)
    }
}

/// A key's public name: the first bytes of its GCM tag over nothing, under the all-zero nonce
/// (never used for data, since data nonces are random).
fn key_id(cipher: &Aes256Gcm) -> [u8; KEY_ID_LEN] {
    let tag = cipher
        .encrypt(Nonce::from_slice(&[0u8; NONCE_LEN]), b"".as_slice())
        .unwrap_or_default();
    let mut id = [0u8; KEY_ID_LEN];
    for (slot, byte) in id.iter_mut().zip(tag) {
        *slot = byte;
    }
    id
}

impl Encryption {
    /// Format 2: the key id, a fresh nonce and the ciphertext of `data` with `aad`.
    fn seal(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, PersistenceError> {
        let nonce = Self::nonce()?;
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: data, aad })
            .map_err(|_| PersistenceError::Transcode {
                reason: "AES-256-GCM encryption failed".into(),
            })?;
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        out.push(V2);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Reverses [`Encryption::seal`] of bytes starting with the format 2 byte.
    fn open(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, PersistenceError> {
        if data.len() <= 1 + KEY_ID_LEN + NONCE_LEN {
            return Err(PersistenceError::Transcode {
                reason: "encrypted payload is truncated".into(),
            });
        }
        let (key, rest) = data[1..].split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let cipher = self
            .cipher_of(key)
            .ok_or_else(|| PersistenceError::Transcode {
                reason: format!(
                    "the payload is encrypted under key id {}, which is not configured \
                     (add it with Encryption::with_previous_key)",
                    hex::encode(key)
                ),
            })?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| decryption_failed())
    }

    /// Encrypts the value of user metadata entry `key` of the event `event_id` at `version`
    /// of `stream_id`: [`ENCRYPTED_METADATA_PREFIX`] and the base64 of format 2 bytes, the
    /// entry (stream, version, event id and key) as associated data.
    pub(crate) fn encrypt_metadata_value(
        &self,
        entry: &MetadataEntry<'_>,
        value: &str,
    ) -> Result<String, PersistenceError> {
        let sealed = self.seal(value.as_bytes(), &entry.associated_data())?;
        let mut out =
            String::with_capacity(ENCRYPTED_METADATA_PREFIX.len() + sealed.len() * 4 / 3 + 4);
        out.push_str(ENCRYPTED_METADATA_PREFIX);
        base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(&sealed, &mut out);
        Ok(out)
    }

    /// Reverses [`Encryption::encrypt_metadata_value`]; `None` for a value that is not
    /// encrypted (no prefix, or a written before metadata encryption and never sealed).
    pub(crate) fn decrypt_metadata_value(
        &self,
        entry: &MetadataEntry<'_>,
        stored: &str,
    ) -> Option<Result<String, PersistenceError>> {
        let sealed = sealed_metadata_value(stored)?;
        Some(
            self.open(&sealed, &entry.associated_data())
                .and_then(|plain| {
                    String::from_utf8(plain).map_err(|_| PersistenceError::Transcode {
                        reason: "a decrypted metadata value is not UTF-8".into(),
                    })
                }),
        )
    }
}

/// The prefix of an encrypted user metadata value (the base64 of AES-256-GCM format 2 bytes
/// follows, without padding).
pub const ENCRYPTED_METADATA_PREFIX: &str = "es-aes256gcm:";

/// The format 2 bytes of an encrypted metadata value, or `None` when `stored` is not one.
pub(crate) fn sealed_metadata_value(stored: &str) -> Option<Vec<u8>> {
    let encoded = stored.strip_prefix(ENCRYPTED_METADATA_PREFIX)?;
    let sealed = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .ok()?;
    (sealed.first() == Some(&V2) && sealed.len() > 1 + KEY_ID_LEN + NONCE_LEN).then_some(sealed)
}

/// The key id named by an encrypted metadata value, as hex (for error messages).
pub(crate) fn metadata_key_id(sealed: &[u8]) -> String {
    hex::encode(sealed.get(1..=KEY_ID_LEN).unwrap_or_default())
}

/// Which user metadata entry a value belongs to: its associated data. The topic is left out
/// on purpose: a migration may rename an event's topic (an alias made current) without
/// rewriting its metadata, while the event id, stream and version of an event never change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetadataEntry<'a> {
    pub(crate) stream_id: &'a str,
    pub(crate) version: u64,
    pub(crate) event_id: uuid::Uuid,
    pub(crate) key: &'a str,
}

impl MetadataEntry<'_> {
    fn associated_data(self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 8 + self.stream_id.len() + 8 + 16 + 8 + self.key.len());
        out.push(b'm');
        out.extend_from_slice(&(self.stream_id.len() as u64).to_be_bytes());
        out.extend_from_slice(self.stream_id.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(self.event_id.as_bytes());
        out.extend_from_slice(&(self.key.len() as u64).to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out
    }
}

fn decryption_failed() -> PersistenceError {
    PersistenceError::Transcode {
        reason: "AES-256-GCM decryption failed: wrong key, tampered payload, or a payload that \
                 belongs to another row"
            .into(),
    }
}

impl Transcoder for Encryption {
    fn encode_for(
        &self,
        data: Vec<u8>,
        context: &PayloadContext<'_>,
    ) -> Result<Vec<u8>, PersistenceError> {
        self.seal(&data, &context.to_bytes())
    }

    fn decode_for(
        &self,
        data: Vec<u8>,
        context: &PayloadContext<'_>,
    ) -> Result<Vec<u8>, PersistenceError> {
        match data.first() {
            Some(&V2) => self.open(&data, &context.to_bytes()),
            _ => self.decode(data),
        }
    }

    fn encode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        let nonce = Self::nonce()?;
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), data.as_slice())
            .map_err(|_| PersistenceError::Transcode {
                reason: "AES-256-GCM encryption failed".into(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    fn decode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        match data.first() {
            Some(&V1) if data.len() > NONCE_LEN => {
                // Format 1 names no key: try the current key, then the previous ones.
                let (nonce, ciphertext) = data[1..].split_at(NONCE_LEN);
                std::iter::once(&self.cipher)
                    .chain(self.previous.iter().map(|(cipher, _)| cipher))
                    .find_map(|cipher| cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok())
                    .ok_or_else(decryption_failed)
            }
            Some(&V1) => Err(PersistenceError::Transcode {
                reason: "encrypted payload is truncated".into(),
            }),
            Some(other) => Err(PersistenceError::Transcode {
                reason: format!(
                    "unknown encryption format byte {other:#04x} (payload not encrypted?)"
                ),
            }),
            None => Err(PersistenceError::Transcode {
                reason: "empty payload: no encryption format byte".into(),
            }),
        }
    }
}
