//! Where an application keeps its events: a URL, the environment, or the default SQLite file.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::error::ApplicationError;
use crate::persistence::{MemoryRecorder, Storage};

/// The environment variable read by [`crate::Application::open_default`].
pub const URL_ENV: &str = "EVENTSOURCING_URL";

/// The store used when nothing is configured: a SQLite file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://eventsourcing.db";

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory:`: events live as long as the application.
    Memory,
    /// `sqlite://PATH`: an embedded SQLite file (`sqlite://:memory:` for a private in-memory
    /// database).
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`: a PostgreSQL server (libpq-style URL).
    Postgres(String),
    /// `cassandra://HOST:PORT/KEYSPACE`: an Apache Cassandra or ScyllaDB cluster (streams
    /// only: no global log, one aggregate per save).
    Cassandra(String),
}

impl FromStr for StoreUrl {
    type Err = ApplicationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url == "memory:" || url == "memory://" {
            Ok(Self::Memory)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ApplicationError::Config(format!(
                    "`{url}` names no SQLite file"
                )));
            }
            // A URL: `%20` is a space, `%25` a percent sign.
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| {
                    ApplicationError::Config(format!(
                        "`{url}`: the path is not UTF-8 once percent-decoded"
                    ))
                })?;
            Ok(Self::Sqlite(PathBuf::from(&*path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if url.starts_with("cassandra://") {
            Ok(Self::Cassandra(url.to_owned()))
        } else {
            Err(ApplicationError::Config(format!(
                "unsupported store URL `{url}`: expected `memory:`, `sqlite://PATH`, `postgres://...` or `cassandra://...`"
            )))
        }
    }
}

impl StoreUrl {
    /// The URL from [`URL_ENV`], or [`DEFAULT_URL`] when it is unset or empty.
    ///
    /// # Errors
    /// [`ApplicationError::Config`] for an unsupported URL.
    pub fn from_env() -> Result<Self, ApplicationError> {
        match std::env::var(URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url.trim().parse(),
            _ => DEFAULT_URL.parse(),
        }
    }

    /// Opens the recorder this URL names, creating the schema if needed.
    ///
    /// # Errors
    /// [`ApplicationError::Config`] when the backend is not compiled in, or the backend's
    /// error when it cannot be opened.
    pub fn open_recorder(&self) -> Result<Arc<dyn Storage>, ApplicationError> {
        match self {
            Self::Memory => Ok(Arc::new(MemoryRecorder::new())),
            Self::Sqlite(path) => open_sqlite(path),
            Self::Postgres(url) => open_postgres(url),
            Self::Cassandra(url) => open_cassandra(url),
        }
    }
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &std::path::Path) -> Result<Arc<dyn Storage>, ApplicationError> {
    let recorder =
        crate::persistence::SqliteRecorder::open(crate::persistence::SqliteConfig::new(path))?;
    Ok(Arc::new(recorder))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_path: &std::path::Path) -> Result<Arc<dyn Storage>, ApplicationError> {
    Err(ApplicationError::Config(
        "this build has no SQLite support: enable the `sqlite` feature".into(),
    ))
}

#[cfg(feature = "cassandra")]
fn open_cassandra(url: &str) -> Result<Arc<dyn Storage>, ApplicationError> {
    Ok(Arc::new(crate::persistence::CassandraRecorder::open_url(
        url,
    )?))
}

#[cfg(not(feature = "cassandra"))]
fn open_cassandra(_url: &str) -> Result<Arc<dyn Storage>, ApplicationError> {
    Err(ApplicationError::Config(
        "this build has no Cassandra support: enable the `cassandra` feature".into(),
    ))
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Arc<dyn Storage>, ApplicationError> {
    use crate::persistence::{PostgresConfig, PostgresRecorder};
    let config = PostgresConfig::from_url(url)?;
    Ok(Arc::new(PostgresRecorder::open(config)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str) -> Result<Arc<dyn Storage>, ApplicationError> {
    Err(ApplicationError::Config(
        "this build has no PostgreSQL support: enable the `postgres` feature".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::StoreUrl;

    #[test]
    fn store_urls() {
        let parse = |url: &str| url.parse::<StoreUrl>().ok();
        assert_eq!(parse("memory:"), Some(StoreUrl::Memory));
        assert_eq!(
            parse("sqlite://app.db"),
            Some(StoreUrl::Sqlite(PathBuf::from("app.db")))
        );
        assert_eq!(
            parse("sqlite:///var/lib/my%20app/events%25.db"),
            Some(StoreUrl::Sqlite(PathBuf::from(
                "/var/lib/my app/events%.db"
            )))
        );
        assert_eq!(parse("sqlite://%FF.db"), None, "not UTF-8 once decoded");
        assert_eq!(parse("sqlite://"), None);
        assert!(matches!(
            parse("postgresql://h/db"),
            Some(StoreUrl::Postgres(_))
        ));
        assert!(matches!(
            parse("cassandra://h:9042/k"),
            Some(StoreUrl::Cassandra(_))
        ));
        assert_eq!(parse("mysql://h/db"), None);
    }
}
