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

/// User metadata values can be encrypted too (`metadata_encryption`), on every backend: the
/// raw row holds no plain value (SQLite read with raw SQL), the values round-trip through the
/// notification log and a process application (which carries them on to its own events,
/// encrypted again for each), a value copied onto another event or read with the wrong key
/// (or without a metadata key) is a typed `Transcode` error, and values stored plain before
/// (today's rows) stay readable.
#[test]
fn user_metadata_values_are_encrypted_bound_and_old_rows_stay_readable() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use eventsourcing::domain::EventContext;
    use eventsourcing::persistence::{
        BoxError, EventQuery, NotificationQuery, SqliteConfig, SqliteRecorder, Storage,
        ENCRYPTED_METADATA_PREFIX,
    };
    use eventsourcing::prelude::*;
    use eventsourcing::system::Upstream;
    use eventsourcing_examples::dog_school::{Dog, DogCommands, DogEvent};

    const SECRET: &str = "alice@example.com";
    let with_key = |storage: &Arc<dyn Storage>, key: &CipherKey, metadata: bool| {
        let cipher = Arc::new(Encryption::new(key));
        let builder = Application::builder()
            .storage(Arc::clone(storage))
            .transcoder(cipher.clone());
        let builder = if metadata {
            builder.metadata_encryption(cipher)
        } else {
            builder
        };
        builder.build().expect("build")
    };
    let context = |value: &str| EventContext {
        user: BTreeMap::from([("email".to_owned(), value.to_owned())]),
        ..EventContext::default()
    };
    let sqlite_file = eventsourcing_tests::support::TempDb::new("metadata encryption");
    let mut backends: Vec<(&str, Arc<dyn Storage>)> =
        eventsourcing_tests::backends("metadata encryption")
            .into_iter()
            .filter(|(name, _)| *name != "sqlite")
            .map(|(name, make)| (name, make()))
            .collect();
    backends.push((
        "sqlite",
        Arc::new(SqliteRecorder::open(SqliteConfig::new(sqlite_file.path())).expect("sqlite")),
    ));
    for (backend, storage) in backends {
        let key = CipherKey::generate().expect("key");
        let app = with_key(&storage, &key, true);
        // Today's rows: written by an application that does not encrypt metadata.
        let plain = with_key(&storage, &key, false);
        let mut old = Dog::register("Old".into());
        old.set_context(context("bob@example.com"));
        old.add_trick("beg".into());
        plain.save(&mut old).expect("save plain");

        let mut dog = Dog::register("Fido".into());
        dog.set_context(context(SECRET));
        dog.add_trick("sit".into());
        dog.add_trick("roll".into());
        app.save(&mut dog).expect("save");

        // The events that carry the value (the creation event came before the context).
        let raw = storage
            .select_events(&dog.id().to_string(), &EventQuery::all())
            .expect("select")
            .split_off(1);
        for event in &raw {
            let stored = &event.metadata.user["email"];
            assert!(
                stored.starts_with(ENCRYPTED_METADATA_PREFIX) && !stored.contains("alice"),
                "{backend}: the stored value is {stored:?}"
            );
        }
        if backend == "sqlite" {
            let db = rusqlite::Connection::open(sqlite_file.path()).expect("raw sqlite");
            let rows: Vec<String> = db
                .prepare(
                    "SELECT metadata FROM events WHERE stream_id = ?1 AND metadata IS NOT NULL",
                )
                .expect("prepare")
                .query_map([dog.id().to_string()], |row| row.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(rows.len(), 2);
            assert!(
                rows.iter().all(|r| !r.contains("alice"))
                    && rows.iter().any(|r| r.contains("email")),
                "the raw row: {rows:?}"
            );
        }

        // Round trips: the log's events through the mapper, the events through a follower.
        let mapper = app.event_store().mapper();
        let log = app
            .event_store()
            .recorder()
            .select_notifications(&NotificationQuery::new(1, 100))
            .expect("log");
        let decoded: Vec<String> = log
            .iter()
            .filter_map(|e| {
                mapper
                    .decode_metadata(e)
                    .expect("decrypt")
                    .user
                    .remove("email")
            })
            .collect();
        assert_eq!(
            decoded,
            vec!["bob@example.com", SECRET, SECRET],
            "{backend}: old plain rows stay readable beside encrypted ones"
        );
        let envelope = mapper
            .to_envelope::<DogEvent>(raw[0].clone())
            .expect("envelope");
        assert_eq!(envelope.metadata.user["email"], SECRET, "{backend}");

        // A process application carries the cause's (decrypted) values on, encrypted again
        // for its own events under its own key.
        let downstream_key = CipherKey::generate().expect("key");
        let downstream = with_key(
            &(Arc::new(eventsourcing::persistence::MemoryRecorder::new()) as Arc<dyn Storage>),
            &downstream_key,
            true,
        );
        let copy =
            |event: &Notification<'_>, ctx: &mut ProcessingContext<'_>| -> Result<(), BoxError> {
                if let Some(DogEvent::TrickAdded { trick }) =
                    event.decode::<DogEvent>()?.map(|e| e.event)
                {
                    ctx.save(&mut Dog::register(format!("taught {trick}")))?;
                }
                Ok(())
            };
        let mut process = ProcessApplication::new(
            downstream.clone(),
            Upstream::application("dogs", &app),
            copy,
        );
        process.run_until_caught_up().expect("process");
        let copies = downstream
            .event_store()
            .recorder()
            .select_notifications(&NotificationQuery::new(1, 100))
            .expect("copies");
        assert_eq!(copies.len(), 3);
        for copy in &copies {
            assert!(copy.metadata.user["email"].starts_with(ENCRYPTED_METADATA_PREFIX));
        }
        let carried: Vec<String> = copies
            .iter()
            .map(|e| {
                downstream
                    .event_store()
                    .mapper()
                    .decode_metadata(e)
                    .expect("decrypt")
                    .user["email"]
                    .clone()
            })
            .collect();
        assert_eq!(
            carried,
            vec!["bob@example.com", SECRET, SECRET],
            "{backend}"
        );

        // The wrong key, and no metadata key at all: typed errors naming the entry.
        let wrong = with_key(&storage, &CipherKey::generate().expect("key"), true);
        let error = wrong
            .event_store()
            .mapper()
            .decode_metadata(&raw[0])
            .expect_err("wrong key");
        assert!(
            matches!(&error, PersistenceError::Transcode { reason } if reason.contains("email")),
            "{backend}: {error:?}"
        );
        let error = plain
            .event_store()
            .mapper()
            .decode_metadata(&raw[0])
            .expect_err("no metadata key");
        assert!(
            matches!(&error, PersistenceError::Transcode { reason } if reason.contains("no metadata key")),
            "{backend}: {error:?}"
        );
        // A key rotation: the new key with the old one as a previous key reads the values.
        let rotated = eventsourcing::persistence::Mapper::new().with_metadata_encryption(Arc::new(
            Encryption::new(&CipherKey::generate().expect("key")).with_previous_key(&key),
        ));
        assert_eq!(
            rotated.decode_metadata(&raw[0]).expect("previous key").user["email"],
            SECRET,
            "{backend}"
        );
        // A value copied onto another event (even of the same stream) does not decrypt there.
        let mut moved = raw[1].clone();
        moved
            .metadata
            .user
            .insert("email".into(), raw[0].metadata.user["email"].clone());
        assert!(
            matches!(
                mapper.decode_metadata(&moved),
                Err(PersistenceError::Transcode { .. })
            ),
            "{backend}: a value copied onto another event decrypted"
        );
        // Under another key name of the same event, neither.
        let mut renamed = raw[0].clone();
        let value = renamed.metadata.user.remove("email").expect("value");
        renamed.metadata.user.insert("phone".into(), value);
        assert!(
            matches!(
                mapper.decode_metadata(&renamed),
                Err(PersistenceError::Transcode { .. })
            ),
            "{backend}: a value moved to another key decrypted"
        );
    }
}

/// `EVENTSOURCING_ENCRYPT_METADATA=true` beside a cipher key turns metadata encryption on;
/// without a key, or with a value that is not a boolean, it is a configuration error.
#[test]
fn metadata_encryption_from_the_environment() {
    use eventsourcing::prelude::*;

    let key = CipherKey::generate().expect("key").to_base64();
    let build = |settings: &[(&str, &str)]| {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Application::builder()
            .url("memory:")
            .and_then(|b| {
                b.transcoders_from(|name| {
                    settings
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
            })
            .and_then(eventsourcing::ApplicationBuilder::build)
    };
    let on = build(&[
        ("EVENTSOURCING_CIPHER_KEY", key.as_str()),
        ("EVENTSOURCING_ENCRYPT_METADATA", "true"),
    ])
    .expect("build");
    assert!(on.event_store().mapper().encrypts_metadata());
    let off = build(&[("EVENTSOURCING_CIPHER_KEY", key.as_str())]).expect("build");
    assert!(!off.event_store().mapper().encrypts_metadata());
    for bad in [
        &[("EVENTSOURCING_ENCRYPT_METADATA", "true")][..],
        &[
            ("EVENTSOURCING_CIPHER_KEY", key.as_str()),
            ("EVENTSOURCING_ENCRYPT_METADATA", "maybe"),
        ][..],
    ] {
        assert!(
            matches!(build(bad), Err(ApplicationError::Config(_))),
            "{bad:?}"
        );
    }
}
