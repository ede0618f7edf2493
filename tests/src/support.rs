//! Helpers for backends that need a resource to outlive the store: a temporary database file
//! and a store wrapper that keeps such a guard alive.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eventsourcing::persistence::{Layered, RecorderLayer, Storage};
use uuid::Uuid;

/// A unique database file path under the system temporary directory; the file and its SQLite
/// companions (`-wal`, `-shm`, `-journal`) are removed when this is dropped.
#[derive(Debug)]
pub struct TempDb(PathBuf);

impl TempDb {
    /// A fresh path (the file is not created) whose name starts with `label`.
    #[must_use]
    pub fn new(label: &str) -> Self {
        Self(std::env::temp_dir().join(format!("es-{label}-{}.db", Uuid::now_v7())))
    }

    /// The database path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            // Best effort: a file that is already gone is fine.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A store that keeps `guard` alive as long as itself (e.g. a [`TempDb`] to delete after the
/// recorder has closed its connections), forwarding every call to `store`.
pub struct Guarded<G> {
    store: Arc<dyn Storage>,
    _guard: G,
}

impl<G: Send + Sync + 'static> Guarded<G> {
    /// Wraps `store`; `guard` drops after it.
    pub fn store(store: Arc<dyn Storage>, guard: G) -> Arc<dyn Storage> {
        Arc::new(Layered(Self {
            store,
            _guard: guard,
        }))
    }
}

impl<G: Send + Sync> RecorderLayer for Guarded<G> {
    fn inner(&self) -> &dyn Storage {
        &*self.store
    }
}

pub use eventsourcing_testkit::CountingStorage;

/// The PostgreSQL 15 server binaries of Debian's packages (`scripts/services.sh` installs them).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL cluster of the test's own, on its own port and socket folder, run as
/// the `postgres` user (initdb refuses root); stopped and removed on drop. For tests that stop,
/// crash, dump or restore a server: never the shared one.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
}

static NEXT_PORT: AtomicU64 = AtomicU64::new(0);

/// A port for a throwaway cluster: below Linux's ephemeral range (32768 and up), where client
/// sockets of other tests could hold it; distinct within the process, spread across processes.
fn next_port() -> u16 {
    let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    20_000 + u16::try_from((u64::from(std::process::id()) * 7 + n * 131) % 12_000).unwrap_or(0)
}

fn as_postgres(cmd: &str) -> bool {
    std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", "sh", "-c", cmd])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl PgCluster {
    /// Creates and starts a cluster with `settings` appended to its `postgresql.conf`, or
    /// `None` after a loud skip when this machine cannot (not root, no server binaries). Under
    /// `EVENTSOURCING_REQUIRE_POSTGRES` a cluster that cannot be had is a failure.
    ///
    /// # Panics
    /// When PostgreSQL is required and the cluster cannot be started.
    #[must_use]
    pub fn start(test: &str, settings: &[&str]) -> Option<Self> {
        let required = std::env::var_os(crate::REQUIRE_POSTGRES_ENV).is_some();
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !is_root || !Path::new(PG_BIN).join("initdb").exists() {
            assert!(
                !required,
                "{test}: a throwaway PostgreSQL cluster needs root and {PG_BIN}"
            );
            eprintln!(
                "\n!!!!!!!!!! SKIPPED {test}: a throwaway PostgreSQL cluster needs root and {PG_BIN} !!!!!!!!!!\n"
            );
            return None;
        }
        let mut cluster = Self::empty()?;
        let data = cluster.data();
        let mut ok = as_postgres(&format!(
            "{PG_BIN}/initdb -A trust -U postgres -D {} >/dev/null",
            data.display()
        ));
        if ok && !settings.is_empty() {
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
            for line in settings {
                text.push_str(line);
                text.push('\n');
            }
            ok = std::fs::write(&conf, text).is_ok();
        }
        ok = ok && cluster.start_on_a_free_port();
        assert!(
            ok || !required,
            "{test}: the throwaway cluster did not start"
        );
        ok.then_some(cluster)
    }

    /// A hot standby of `primary` (a base backup streaming from it), started on its own
    /// port; `None` when it cannot be made.
    #[must_use]
    pub fn standby_of(primary: &Self) -> Option<Self> {
        let mut standby = Self::empty()?;
        let ok = as_postgres(&format!(
                "{PG_BIN}/pg_basebackup -h 127.0.0.1 -p {} -U postgres -D {} -R -X stream -c fast >/dev/null 2>&1",
                primary.port,
                standby.data().display()
            ))
            && standby.start_on_a_free_port();
        ok.then_some(standby)
    }

    /// A base backup of `primary` (`pg_basebackup -X stream`, no standby configuration) in
    /// a cluster folder of its own, not started: a test configures it (recovery settings)
    /// and starts it with [`PgCluster::start_server`]; `None` when it cannot be made.
    #[must_use]
    pub fn base_backup_of(primary: &Self) -> Option<Self> {
        let backup = Self::empty()?;
        as_postgres(&format!(
            "{PG_BIN}/pg_basebackup -h 127.0.0.1 -p {} -U postgres -D {} -X stream -c fast >/dev/null 2>&1",
            primary.port,
            backup.data().display()
        ))
        .then_some(backup)
    }

    /// Appends `settings` to the cluster's `postgresql.auto.conf` (read last, so they win).
    #[must_use]
    pub fn configure(&self, settings: &[&str]) -> bool {
        let conf = self.data().join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        for line in settings {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&conf, text).is_ok()
    }

    /// Starts a cluster made by [`PgCluster::base_backup_of`] (or stopped), on a free port.
    #[must_use]
    pub fn start_server(&mut self) -> bool {
        self.start_on_a_free_port()
    }

    /// Starts the server, on another port when its port is taken (by a client socket of
    /// another test, say): up to five tries.
    fn start_on_a_free_port(&mut self) -> bool {
        for _ in 0..5 {
            if self.ctl("start") {
                return true;
            }
            self.port = next_port();
        }
        false
    }

    /// A folder owned by `postgres` and a port of its own, for a cluster not created yet.
    fn empty() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("es-pg-{}", Uuid::now_v7().simple()));
        std::fs::create_dir(&dir).ok()?;
        let cluster = Self {
            dir,
            port: next_port(),
        };
        let owned = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&cluster.dir)
            .status()
            .is_ok_and(|s| s.success());
        owned.then_some(cluster)
    }

    /// The data directory.
    #[must_use]
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `pg_ctl ACTION` (start, stop, restart) in fast mode; whether it worked.
    #[must_use]
    pub fn ctl(&self, action: &str) -> bool {
        self.ctl_mode(action, "fast")
    }

    /// `pg_ctl ACTION -m MODE`; `stop` in `immediate` mode is a crash of the server (no
    /// checkpoint, nothing flushed that was not flushed already).
    #[must_use]
    pub fn ctl_mode(&self, action: &str, mode: &str) -> bool {
        as_postgres(&format!(
            "{PG_BIN}/pg_ctl -D {} -o '-p {} -k {} -c listen_addresses=127.0.0.1' -l {}/log -w -m {mode} {action} >/dev/null",
            self.data().display(),
            self.port,
            self.dir.display(),
            self.dir.display()
        ))
    }

    /// Runs a command line as the `postgres` user; whether it worked.
    #[must_use]
    pub fn run(&self, cmd: &str) -> bool {
        as_postgres(cmd)
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL of the `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// A URL of database `db`.
    #[must_use]
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.ctl_mode("stop", "immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
