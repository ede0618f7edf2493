//! The compression and encryption transcoders on their own: formats, markers and errors.

use eventsourcing::persistence::{
    CipherKey, Compression, Encryption, PersistenceError, Transcoder,
};

fn is_transcode<T: std::fmt::Debug>(result: Result<T, PersistenceError>) -> bool {
    matches!(result, Err(PersistenceError::Transcode { .. }))
}

#[test]
fn compression_marks_tiny_payloads_and_compresses_large_ones() {
    let zlib = Compression::new();
    let tiny = br#"{"a":1}"#.to_vec();
    let stored = zlib.encode(tiny.clone()).expect("encode");
    assert_eq!(stored[0], 0x00, "raw marker");
    assert_eq!(&stored[1..], tiny.as_slice());
    assert_eq!(zlib.decode(stored).expect("decode"), tiny);

    let large = format!(r#"{{"text":"{}"}}"#, "abc".repeat(500)).into_bytes();
    let stored = zlib.encode(large.clone()).expect("encode");
    assert_eq!(stored[0], 0x01, "zlib marker");
    assert!(stored.len() < large.len() / 10, "{} bytes", stored.len());
    assert_eq!(zlib.decode(stored).expect("decode"), large);

    // Incompressible data above the threshold is kept raw rather than grown.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).expect("byte"))
        .collect();
    let stored = Compression::new()
        .min_size(0)
        .encode(noise.clone())
        .expect("encode");
    assert!(stored.len() <= noise.len() + 1);
    assert_eq!(Compression::new().decode(stored).expect("decode"), noise);
}

#[test]
fn compression_reads_legacy_json_and_rejects_unknown_formats() {
    let zlib = Compression::new();
    let legacy = br#"{"written":"before compression"}"#.to_vec();
    assert_eq!(zlib.decode(legacy.clone()).expect("legacy"), legacy);
    assert!(is_transcode(zlib.decode(vec![0x07, 1, 2])));
    assert!(is_transcode(zlib.decode(Vec::new())));
    assert!(is_transcode(
        zlib.decode(vec![0x01, 0xde, 0xad, 0xbe, 0xef])
    ));
}

#[test]
fn encryption_uses_a_fresh_nonce_and_authenticates() {
    let key = CipherKey::generate().expect("key");
    let cipher = Encryption::new(&key);
    let plain = br#"{"card":"4111 1111 1111 1111"}"#.to_vec();
    let one = cipher.encode(plain.clone()).expect("encrypt");
    let two = cipher.encode(plain.clone()).expect("encrypt");
    assert_ne!(one, two, "a random nonce per payload");
    assert_eq!(one[0], 0x01);
    assert_eq!(one.len(), 1 + 12 + plain.len() + 16);
    assert_eq!(cipher.decode(one.clone()).expect("decrypt"), plain);

    let mut tampered = one.clone();
    tampered[20] ^= 0x80;
    assert!(is_transcode(cipher.decode(tampered)));
    let wrong = Encryption::new(&CipherKey::generate().expect("key"));
    assert!(is_transcode(wrong.decode(one.clone())));
    assert!(is_transcode(cipher.decode(one[..10].to_vec())));
    assert!(is_transcode(cipher.decode(plain)));
    assert!(is_transcode(cipher.decode(Vec::new())));
}

#[test]
fn cipher_keys_parse_from_hex_and_base64_and_never_print() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let from_hex = CipherKey::parse(hex).expect("hex");
    let from_base64 = CipherKey::parse(&from_hex.to_base64()).expect("base64");
    assert_eq!(from_hex.to_base64(), from_base64.to_base64());
    let unpadded = from_hex.to_base64().trim_end_matches('=').to_owned();
    assert!(CipherKey::parse(&unpadded).is_ok());
    assert_eq!(format!("{from_hex:?}"), "CipherKey(..)");
    for bad in ["", "xyz!", "c2hvcnQ=", &hex[..62]] {
        assert!(
            matches!(CipherKey::parse(bad), Err(PersistenceError::Config(_))),
            "{bad}"
        );
    }
    // The same key decrypts what the other form encrypted.
    let stored = Encryption::new(&from_hex)
        .encode(b"{}".to_vec())
        .expect("encrypt");
    assert_eq!(
        Encryption::new(&from_base64)
            .decode(stored)
            .expect("decrypt"),
        b"{}"
    );
}

/// A zlib bomb: 24 MiB of valid JSON in about 24 KiB. Stored by hand (as an attacker with write
/// access to the table would), it must be a typed limit error on load, never a 24 MiB
/// allocation, let alone the process aborting under a memory limit.
#[test]
fn compression_bombs_are_a_typed_error() {
    use std::io::Write;

    let mut json = Vec::with_capacity(24 << 20);
    json.extend_from_slice(br#"{"name":""#);
    json.resize(24 << 20, b'a');
    json.extend_from_slice(br#""}"#);
    let mut bomb = vec![0x01];
    let mut encoder = flate2::write::ZlibEncoder::new(&mut bomb, flate2::Compression::best());
    encoder.write_all(&json).expect("compress");
    encoder.finish().expect("finish");
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());

    let zlib = Compression::new();
    let error = match zlib.decode(bomb.clone()) {
        Ok(decoded) => panic!("the bomb decoded to {} bytes", decoded.len()),
        Err(error) => error,
    };
    assert!(
        matches!(
            error,
            PersistenceError::LimitExceeded { limit, .. } if limit == Compression::DEFAULT_MAX_DECODED_BYTES as u64
        ),
        "{error:?}"
    );
    // The bound is the transcoder's, and encoding refuses what decoding would refuse.
    let small = Compression::new().max_decoded_bytes(1024);
    assert!(matches!(
        small.encode(vec![b'{'; 2048]),
        Err(PersistenceError::LimitExceeded { limit: 1024, .. })
    ));
    let roomy = Compression::new().max_decoded_bytes(32 << 20);
    assert_eq!(
        roomy.decode(bomb).expect("within the bound").len(),
        json.len()
    );
}

/// An encrypted payload is bound to its row: copied onto another aggregate's event (or an
/// event's payload into a snapshot), it fails to decrypt with a typed error instead of giving
/// the other aggregate its state. Rows written in the older format (no binding) stay readable.
#[test]
fn encrypted_payloads_are_bound_to_their_stream_version_and_topic() {
    use std::sync::Arc;

    use eventsourcing::persistence::{EventQuery, MemoryRecorder, Storage};
    use eventsourcing::prelude::*;
    use eventsourcing_examples::dog_school::{Dog, DogCommands};

    let key = CipherKey::generate().expect("key");
    let storage: Arc<dyn Storage> = Arc::new(MemoryRecorder::new());
    let app = Application::builder()
        .storage(Arc::clone(&storage))
        .transcoder(Arc::new(Encryption::new(&key)))
        .build()
        .expect("build");
    let mut rich = Dog::register("Rich".into());
    rich.add_trick("a million".into());
    let mut poor = Dog::register("Poor".into());
    poor.add_trick("nothing".into());
    app.save(&mut rich).expect("save");
    app.save(&mut poor).expect("save");

    // An attacker with write access to the table copies Rich's second payload onto Poor's.
    let stolen = storage
        .select_events(&rich.id().to_string(), &EventQuery::all())
        .expect("select")[1]
        .payload
        .clone();
    let mut victim = storage
        .select_events(&poor.id().to_string(), &EventQuery::all())
        .expect("select");
    victim[1].payload = stolen;
    storage.update_events(&victim[1..]).expect("tamper");
    let error = app.get::<Dog>(poor.id()).expect_err("a copied payload");
    assert!(
        error.to_string().contains("decryption failed"),
        "a typed transcoding error, not Rich's trick: {error}"
    );
    assert!(app
        .get::<Dog>(rich.id())
        .expect("untouched")
        .knows("a million"));
}

/// Format 2 names its key: a store half-way through a key rotation reads with the new key
/// plus the previous one; a missing key is named in the error; format 1 payloads (written
/// before the binding existed) stay readable; a payload moved between an event and a
/// snapshot of the same stream and version fails.
#[test]
fn encryption_rotates_keys_and_reads_the_older_format() {
    use eventsourcing::persistence::PayloadContext;

    let (old, new) = (
        CipherKey::generate().expect("key"),
        CipherKey::generate().expect("key"),
    );
    let event = PayloadContext::event("s-1", 3, "Dog.TrickAdded");
    let under_old = Encryption::new(&old)
        .encode_for(br#"{"trick":"sit"}"#.to_vec(), &event)
        .expect("encrypt");
    let rotated = Encryption::new(&new).with_previous_key(&old);
    assert_eq!(
        rotated
            .decode_for(under_old.clone(), &event)
            .expect("old key"),
        br#"{"trick":"sit"}"#
    );
    let error = Encryption::new(&new)
        .decode_for(under_old.clone(), &event)
        .expect_err("key not configured");
    assert!(error.to_string().contains("key id"), "{error}");
    let snapshot = PayloadContext::snapshot("s-1", 3, "Dog.TrickAdded");
    assert!(is_transcode(rotated.decode_for(under_old, &snapshot)));
    // Format 1: no binding, no key id.
    let legacy = Encryption::new(&old)
        .encode(br#"{"trick":"sit"}"#.to_vec())
        .expect("encrypt");
    assert_eq!(legacy[0], 0x01);
    assert_eq!(
        rotated.decode_for(legacy, &event).expect("format 1"),
        br#"{"trick":"sit"}"#
    );
}
