//! Opening a store from its URL, as a recorder that can also be inspected.

use std::sync::Arc;
use std::time::Duration;

use eventsourcing::persistence::inspect::Inspect;
use eventsourcing::persistence::{
    MemoryRecorder, PostgresConfig, PostgresRecorder, SqliteConfig, SqliteRecorder,
};
use eventsourcing::StoreUrl;

use crate::error::CliError;

/// Whether opening may create a new store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Reading commands: a missing SQLite file is an error, not a new empty store.
    No,
    /// Targets of `import` and `copy`.
    Yes,
}

/// How long a PostgreSQL connection may take when the URL does not say
/// (`connect_timeout_ms`): short, so that a wrong host fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store `url` names (creating its schema if needed).
pub(crate) fn open(url: &str, create: Create) -> Result<Arc<dyn Inspect>, CliError> {
    let parsed: StoreUrl = url.trim().parse()?;
    match parsed {
        StoreUrl::Memory => Ok(Arc::new(MemoryRecorder::new())),
        StoreUrl::Sqlite(path) => {
            let in_memory = path.as_os_str() == eventsourcing::persistence::sqlite::IN_MEMORY;
            if !in_memory && create == Create::No && !path.is_file() {
                return Err(CliError::input(
                    &path,
                    "no such SQLite file (give the path of an existing store)",
                ));
            }
            Ok(Arc::new(SqliteRecorder::open(SqliteConfig::new(path))?))
        }
        StoreUrl::Postgres(url) => {
            let mut config = PostgresConfig::from_url(&url)?.pool_size(2);
            if !url.contains("connect_timeout_ms=") {
                config = config.connect_timeout(CONNECT_TIMEOUT);
            }
            Ok(Arc::new(PostgresRecorder::open(config)?))
        }
        StoreUrl::Cassandra(_) => Err(CliError::Store(
            eventsourcing::PersistenceError::Unsupported {
                backend: "Cassandra",
                operation: "the eventsourcing tool",
                reason: "a Cassandra store keeps no global log to list, export or verify",
            },
        )),
        other => Err(CliError::Config(format!("unsupported store URL {other:?}"))),
    }
}

/// `url` without a password, for messages and names kept in the target.
pub(crate) fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((user_info, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    let user = user_info.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}@{host}")
}
