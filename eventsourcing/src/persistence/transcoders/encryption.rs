//! Application-level encryption of payloads with AES-256-GCM (RustCrypto `aes-gcm`).

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;

use crate::persistence::{PersistenceError, Transcoder};

/// Format byte of version 1: nonce and ciphertext follow.
const V1: u8 = 0x01;
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
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()
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
        Self {
            cipher: Aes256Gcm::new(&key.0.into()),
        }
    }
}

impl Transcoder for Encryption {
    fn encode(&self, data: Vec<u8>) -> Result<Vec<u8>, PersistenceError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| PersistenceError::Transcode {
            reason: format!("no randomness for a nonce: {e}"),
        })?;
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
                let (nonce, ciphertext) = data[1..].split_at(NONCE_LEN);
                self.cipher
                    .decrypt(Nonce::from_slice(nonce), ciphertext)
                    .map_err(|_| PersistenceError::Transcode {
                        reason: "AES-256-GCM decryption failed: wrong key or tampered payload"
                            .into(),
                    })
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
