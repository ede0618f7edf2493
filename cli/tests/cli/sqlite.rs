//! Every command on SQLite, and bad input.

use crate::support::{lines, log_without_positions, positions, run, run_bin, SqliteStore, DOGS};

#[test]
fn streams_show_log_and_stats() {
    let store = SqliteStore::seeded();
    let url = store.url.as_str();
    let streams = run(&["--url", url, "streams"]).expect(0);
    assert_eq!(streams.stdout.lines().count(), 4, "{}", streams.stdout);
    let fido = store.dogs[0].to_string();
    assert!(
        streams
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("{fido}\t3\t2"))),
        "{}",
        streams.stdout
    );
    let limited = run(&["--url", url, "streams", "--limit", "2"]).expect(0);
    assert_eq!(limited.stdout.lines().count(), 2);
    let prefix = &fido[..30];
    let prefixed = run(&["--url", url, "streams", "--prefix", prefix]).expect(0);
    assert!(
        prefixed.stdout.lines().all(|l| l.starts_with(prefix)) && prefixed.stdout.contains(&fido)
    );

    let show = run(&["--url", url, "show", &fido]).expect(0);
    assert!(
        show.stdout.contains("v3 ") && show.stdout.contains(r#""trick":"roll over""#),
        "{}",
        show.stdout
    );
    let json = run(&["--url", url, "show", &fido, "--from-version", "2", "--json"]).expect(0);
    let versions: Vec<u64> = json
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["version"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(versions, [2, 3]);
    let missing = run(&["--url", url, "show", "no-such-stream"]).expect(11);
    missing.one_error_line();

    let log = run(&["--url", url, "log"]).expect(0);
    assert_eq!(log.stdout.lines().count(), 8, "{}", log.stdout);
    let after = run(&["--url", url, "log", "--after", "5", "--json"]).expect(0);
    assert_eq!(
        positions(url).into_iter().filter(|p| *p > 5).count(),
        after.stdout.lines().count()
    );
    let topic = run(&[
        "--url",
        url,
        "log",
        "--topic",
        "Dog.Registered",
        "--topic",
        "Nope",
    ])
    .expect(0);
    assert_eq!(topic.stdout.lines().count(), 4, "{}", topic.stdout);

    let stats = run(&["--url", url, "stats", "--json"]).expect(0);
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).expect("json");
    assert_eq!(stats["events"], 8);
    assert_eq!(stats["streams"], 4);
    assert_eq!(stats["snapshots"], 1);
    assert_eq!(stats["topics"][0]["topic"], "Dog.Registered");
    assert_eq!(stats["topics"][0]["events"], 4);
    assert!(run(&["--url", url, "stats"])
        .expect(0)
        .stdout
        .contains("Dog.TrickAdded\t4\t"));
}

#[test]
fn typed_show_decodes_and_upcasts_the_users_events() {
    let store = SqliteStore::seeded();
    // A version-1 TrickAdded, written before `level` existed.
    store
        .sql()
        .execute(
            "UPDATE events SET schema_version = 1, payload = CAST('{\"trick\":\"sit\"}' AS BLOB) WHERE position = 2",
            [],
        )
        .expect("plant");
    let fido = store.dogs[0].to_string();
    let show = run_bin(DOGS, &["--url", &store.url, "show", &fido]).expect(0);
    assert!(
        show.stdout
            .contains(r#"TrickAdded { trick: "sit", level: 1 }"#),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains(r#"Registered { name: "Fido" }"#),
        "{}",
        show.stdout
    );
    let json = run_bin(DOGS, &["--url", &store.url, "show", &fido, "--json"]).expect(0);
    let second: serde_json::Value =
        serde_json::from_str(json.stdout.lines().nth(1).expect("two lines")).expect("json");
    assert_eq!(
        second["event"],
        serde_json::json!({"trick": "sit", "level": 1})
    );
    assert_eq!(second["payload"], serde_json::json!({"trick": "sit"}));
    run_bin(DOGS, &["--url", &store.url, "verify"]).expect(0);
}

#[test]
fn export_import_keeps_order_and_metadata_and_resumes() {
    let source = SqliteStore::seeded();
    let file = source.file("export.jsonl");
    let file_arg = file.to_str().expect("path");
    let export = run(&["--url", &source.url, "export", file_arg]).expect(0);
    assert!(
        export.stderr.is_empty(),
        "no progress bar when not on a terminal: {}",
        export.stderr
    );
    let all = lines(&file);
    assert_eq!(all.len(), 10, "header, 8 events, footer");
    assert!(all[0].contains(r#""format":"eventsourcing-export","format_version":1"#));
    assert_eq!(all[9], r#"{"end":true,"events":8}"#);

    // An interrupted import: the first 5 events only (as a file with a footer for them).
    let partial = source.file("partial.jsonl");
    let mut text = all[..6].join("\n");
    text.push_str("\n{\"end\":true,\"events\":5}\n");
    std::fs::write(&partial, text).expect("write");
    let target = SqliteStore::empty();
    let first = run(&[
        "--url",
        &target.url,
        "import",
        partial.to_str().expect("path"),
    ])
    .expect(0);
    assert!(
        first.stdout.contains("imported 5 events"),
        "{}",
        first.stdout
    );
    let resumed = run(&["--url", &target.url, "import", file_arg]).expect(0);
    assert!(
        resumed
            .stdout
            .contains("imported 3 events (5 already there)"),
        "{}",
        resumed.stdout
    );
    let again = run(&["--url", &target.url, "import", file_arg]).expect(0);
    assert!(
        again.stdout.contains("imported 0 events (8 already there)"),
        "{}",
        again.stdout
    );

    let log = log_without_positions(&source.url);
    assert_eq!(log_without_positions(&target.url), log);
    assert!(log
        .iter()
        .any(|e| e["user"]["user"] == "alice" && e["causation_id"].is_string()));
    let target_positions = positions(&target.url);
    assert!(target_positions.windows(2).all(|w| w[0] < w[1]));
    run(&["--url", &target.url, "verify"]).expect(0);
}

#[test]
fn copy_resumes_and_copies_only_new_events() {
    let source = SqliteStore::seeded();
    let target = SqliteStore::empty();
    let copy = run(&["copy", "--from", &source.url, "--to", &target.url]).expect(0);
    assert!(copy.stdout.contains("copied 8 events"), "{}", copy.stdout);
    assert!(copy.stderr.is_empty());
    crate::support::seed(&source.url);
    let more = run(&["copy", "--from", &source.url, "--to", &target.url]).expect(0);
    assert!(more.stdout.contains("copied 8 events"), "{}", more.stdout);
    let none = run(&["copy", "--from", &source.url, "--to", &target.url]).expect(0);
    assert!(none.stdout.contains("copied 0 events"), "{}", none.stdout);
    assert_eq!(
        log_without_positions(&target.url),
        log_without_positions(&source.url)
    );
}

#[test]
fn follow_prints_new_events_until_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let store = SqliteStore::seeded();
    let mut child = std::process::Command::new(crate::support::TOOL)
        .args([
            "--url",
            &store.url,
            "log",
            "--follow",
            "--json",
            "--after",
            "8",
            "--poll-ms",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    crate::support::seed(&store.url);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    let first: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(first["position"], 9);
    assert_eq!(first["topic"], "Dog.Registered");
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --follow successfully");
}

#[test]
fn bad_input_is_one_line_and_a_distinct_code() {
    let store = SqliteStore::seeded();
    let url = store.url.as_str();
    // Malformed URLs.
    run(&["--url", "mysql://x/y", "streams"])
        .expect(3)
        .one_error_line();
    run(&["--url", "postgres://u@h/db?pool_size=x", "streams"])
        .expect(3)
        .one_error_line();
    run(&["streams"]).expect(3).one_error_line();
    // Unreachable server.
    let down = run(&[
        "--url",
        "postgres://u@127.0.0.1:1/db?connect_timeout_ms=300",
        "stats",
    ])
    .expect(4);
    assert!(
        down.one_error_line().contains("unavailable"),
        "{}",
        down.stderr
    );
    // A missing store file is not created.
    let missing = store.file("missing.db");
    run(&["--url", &format!("sqlite://{}", missing.display()), "stats"])
        .expect(5)
        .one_error_line();
    assert!(!missing.exists());
    // Missing, truncated, damaged and foreign export files.
    let file = store.file("e.jsonl");
    run(&["--url", url, "export", file.to_str().expect("path")]).expect(0);
    let target = store.file("t.db");
    let target_url = format!("sqlite://{}", target.display());
    run(&[
        "--url",
        &target_url,
        "import",
        store.file("nope.jsonl").to_str().expect("path"),
    ])
    .expect(5)
    .one_error_line();
    let text = std::fs::read_to_string(&file).expect("read");
    let truncated = store.file("truncated.jsonl");
    std::fs::write(&truncated, &text[..text.len() - 10]).expect("write");
    let error = run(&[
        "--url",
        &target_url,
        "import",
        truncated.to_str().expect("path"),
    ])
    .expect(5);
    assert!(error.one_error_line().contains("truncated"));
    let lines: Vec<&str> = text.lines().collect();
    let holed = store.file("holed.jsonl");
    std::fs::write(
        &holed,
        format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]),
    )
    .expect("write");
    let error = run(&[
        "--url",
        &target_url,
        "import",
        holed.to_str().expect("path"),
    ])
    .expect(5);
    assert!(
        error.one_error_line().contains("footer says 8"),
        "{}",
        error.stderr
    );
    let garbled = store.file("garbled.jsonl");
    std::fs::write(
        &garbled,
        format!(
            "{}\n{{\"position\":1}}\n{{\"end\":true,\"events\":1}}\n",
            lines[0]
        ),
    )
    .expect("write");
    let error = run(&[
        "--url",
        &target_url,
        "import",
        garbled.to_str().expect("path"),
    ])
    .expect(5);
    assert!(
        error.one_error_line().contains("line 2"),
        "{}",
        error.stderr
    );
    // A file of a newer format, and a store of a newer schema.
    let newer = store.file("newer.jsonl");
    std::fs::write(
        &newer,
        text.replacen("\"format_version\":1", "\"format_version\":99", 1),
    )
    .expect("write");
    run(&[
        "--url",
        &target_url,
        "import",
        newer.to_str().expect("path"),
    ])
    .expect(6)
    .one_error_line();
    store
        .sql()
        .pragma_update(None, "user_version", 99)
        .expect("plant");
    let error = run(&["--url", url, "streams"]).expect(6);
    assert!(
        error.one_error_line().contains("schema version 99"),
        "{}",
        error.stderr
    );
    // Usage errors are clap's (code 2); --help lists the exit codes.
    assert_eq!(run(&["frobnicate"]).code, 2);
    assert!(run(&["--help"])
        .expect(0)
        .stdout
        .contains("130  interrupted"));
}
