//! Running the binaries, and stores to run them on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eventsourcing::domain::Metadata;
use eventsourcing::persistence::{SqliteConfig, SqliteRecorder};
use eventsourcing::prelude::*;
use eventsourcing::{AggregateRecorder, StoredEvent, StreamAppend};

use crate::dog::{Dog, DogCommands};

/// The plain tool.
pub(crate) const TOOL: &str = env!("CARGO_BIN_EXE_eventsourcing");
/// The embedding example, which knows the `Dog` events.
pub(crate) const DOGS: &str = env!("CARGO_BIN_EXE_eventsourcing-dogs");

/// What a run gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic: {}",
            self.stderr
        );
        self
    }

    /// An error is one line on stderr.
    #[track_caller]
    pub(crate) fn one_error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("eventsourcing: "), "{}", lines[0]);
        lines[0]
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `binary` with `args`, `EVENTSOURCING_URL` unset.
pub(crate) fn run_bin(binary: &str, args: &[&str]) -> Run {
    let output = Command::new(binary)
        .args(args)
        .env_remove("EVENTSOURCING_URL")
        .output()
        .expect("run the binary");
    finish(output)
}

/// Runs the plain tool.
pub(crate) fn run(args: &[&str]) -> Run {
    run_bin(TOOL, args)
}

/// A temporary folder with a SQLite store in it.
pub(crate) struct SqliteStore {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) url: String,
    /// The dogs' stream ids, in creation order.
    pub(crate) dogs: Vec<Uuid>,
}

impl SqliteStore {
    /// An empty store's URL in a fresh folder (no file yet).
    pub(crate) fn empty() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("store.db");
        let url = format!("sqlite://{}", path.display());
        Self {
            dir,
            path,
            url,
            dogs: Vec::new(),
        }
    }

    /// A store with three dogs (one with a snapshot) and an event with metadata.
    pub(crate) fn seeded() -> Self {
        let mut store = Self::empty();
        store.dogs = seed(&store.url);
        store
    }

    /// A file in the store's folder.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The raw SQLite connection, for planting damage.
    pub(crate) fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("open the SQLite file")
    }
}

/// Writes three dogs with tricks (interleaved saves, one dog snapshotted) and one event with
/// causation, correlation and user metadata through the application; returns the dogs' ids.
pub(crate) fn seed(url: &str) -> Vec<Uuid> {
    let app = Application::open(url).expect("open the application");
    let mut fido = Dog::register("Fido".into());
    fido.add_trick("sit".into(), 1);
    app.save(&mut fido).expect("save");
    let mut rex = Dog::register("Rex".into());
    app.save(&mut rex).expect("save");
    fido.add_trick("roll over".into(), 2);
    rex.add_trick("fetch".into(), 1);
    app.save(&mut fido).expect("save");
    app.save(&mut rex).expect("save");
    app.take_snapshot::<Dog>(fido.id(), None).expect("snapshot");
    let mut bella = Dog::register("Bella".into());
    bella.add_trick("beg".into(), 3);
    app.save(&mut bella).expect("save");
    let ids = vec![fido.id(), rex.id(), bella.id()];
    drop(app);
    let mut metadata = Metadata::new();
    metadata.causation_id = Some(Uuid::now_v7());
    metadata.correlation_id = Some(Uuid::now_v7());
    metadata.user.insert("user".into(), "alice".into());
    let stream_id = Uuid::now_v7().to_string();
    let event = StoredEvent {
        stream_id: stream_id.clone(),
        version: 1,
        topic: "Dog.Registered".into(),
        schema_version: 1,
        payload: br#"{"name":"Max"}"#.to_vec(),
        metadata,
        position: None,
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        let recorder = SqliteRecorder::open(SqliteConfig::new(path)).expect("open");
        recorder
            .append(
                &[StreamAppend {
                    stream_id,
                    expected_version: 0,
                    events: vec![event],
                }],
                None,
            )
            .expect("append");
    } else {
        let recorder =
            eventsourcing::StoreUrl::open_recorder(&url.parse().expect("url")).expect("open");
        recorder
            .append(
                &[StreamAppend {
                    stream_id,
                    expected_version: 0,
                    events: vec![event],
                }],
                None,
            )
            .expect("append");
    }
    ids
}

/// The log of a store as `log --json` prints it, without the positions (which each store
/// assigns) and the readable times.
pub(crate) fn log_without_positions(url: &str) -> Vec<serde_json::Value> {
    let run = run(&["--url", url, "log", "--json"]).expect(0);
    run.stdout
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let object = value.as_object_mut().expect("an object");
            assert!(object.remove("position").is_some_and(|p| p.is_u64()));
            object.remove("time");
            value
        })
        .collect()
}

/// The positions of a store's log, in log order.
pub(crate) fn positions(url: &str) -> Vec<u64> {
    let run = run(&["--url", url, "log", "--json"]).expect(0);
    run.stdout
        .lines()
        .filter_map(|line| {
            serde_json::from_str::<serde_json::Value>(line).ok()?["position"].as_u64()
        })
        .collect()
}

/// The export file's lines.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read the file")
        .lines()
        .map(str::to_owned)
        .collect()
}
