//! Commits by any process on a database file, noticed cheaply: `PRAGMA data_version` on a
//! connection of the watcher's own changes whenever another connection commits, and reading
//! it touches no table.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::SqliteRecorder;
use crate::persistence::listener::{CommitListener, Watch};

/// How often the watcher reads `data_version` (the most it delays a wake-up).
const CHECK: Duration = Duration::from_millis(10);

impl SqliteRecorder {
    /// Calls `on_commit` (on a thread of its own) after commits to this database file by any
    /// process, checked every 10 ms with `PRAGMA data_version`, and at least once every
    /// `poll_interval` whatever happens. The watcher holds one read-only connection of its own,
    /// reopened if it fails; dropping the listener stops it. A private in-memory database has
    /// no other process: there it only fires every `poll_interval`.
    #[must_use]
    pub fn listen_for_commits(
        &self,
        poll_interval: Duration,
        on_commit: impl Fn() + Send + 'static,
    ) -> CommitListener {
        let path = (!self.config.is_in_memory()).then(|| self.config.path.clone());
        CommitListener::spawn(poll_interval, Box::new(on_commit), move |watch| {
            watch_loop(path.as_deref(), watch);
        })
    }
}

fn watch_loop(path: Option<&std::path::Path>, watch: &mut Watch<'_>) {
    let mut conn: Option<Connection> = None;
    let mut seen: Option<i64> = None;
    while !watch.stopped() {
        std::thread::sleep(CHECK.min(watch.poll_interval()));
        let Some(path) = path else {
            watch.poll_if_due();
            continue;
        };
        if conn.is_none() {
            conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .ok();
            if conn.is_some() {
                seen = None;
                watch.connected();
            }
        }
        let version = conn.as_ref().and_then(|c| {
            c.pragma_query_value(None, "data_version", |row| row.get(0))
                .ok()
        });
        match (version, seen) {
            (Some(now), Some(before)) if now != before => {
                seen = Some(now);
                watch.commit_seen();
            }
            (Some(now), _) => {
                seen = Some(now);
                watch.poll_if_due();
            }
            (None, _) => {
                conn = None;
                watch.poll_if_due();
            }
        }
    }
}
