//! Configuration of the Cassandra recorder: contact points, keyspace, replication, buckets.

use std::time::Duration;

use crate::persistence::PersistenceError;

/// How the keyspace is replicated when the recorder creates it (an existing keyspace is used
/// as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (one data centre).
    Simple(u32),
    /// `NetworkTopologyStrategy` with a replication factor per data centre.
    NetworkTopology(Vec<(String, u32)>),
}

impl Replication {
    /// The CQL map of the `replication` option.
    pub(super) fn cql(&self) -> String {
        match self {
            Self::Simple(factor) => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Self::NetworkTopology(dcs) => {
                let mut cql = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, factor) in dcs {
                    cql.push_str(&format!(", '{dc}': {factor}"));
                }
                cql.push('}');
                cql
            }
        }
    }
}

/// Where and how a [`CassandraRecorder`](super::CassandraRecorder) keeps events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraConfig {
    /// Contact points, `host:port` (the driver discovers the rest of the cluster).
    pub nodes: Vec<String>,
    /// The keyspace (created if missing).
    pub keyspace: String,
    /// Replication of a keyspace the recorder creates.
    pub replication: Replication,
    /// Events per partition bucket of a stream: a stream's events live in partitions of about
    /// this many events each, so that a very long stream does not grow one partition without
    /// bound. Fixed when the keyspace's tables are created; one append holds at most this many
    /// events. Default 10,000.
    pub bucket_size: u64,
    /// How long one request may take before it fails with a typed error.
    pub request_timeout: Duration,
    /// Drops the keyspace when the recorder is dropped (tests only).
    pub(super) drop_keyspace_on_drop: bool,
}

/// The URL scheme.
pub(super) const SCHEME: &str = "cassandra://";

impl CassandraConfig {
    /// The default events per bucket.
    pub const DEFAULT_BUCKET_SIZE: u64 = 10_000;

    /// A single contact point and a keyspace, replication factor 1.
    #[must_use]
    pub fn new(node: impl Into<String>, keyspace: impl Into<String>) -> Self {
        Self {
            nodes: vec![node.into()],
            keyspace: keyspace.into(),
            replication: Replication::Simple(1),
            bucket_size: Self::DEFAULT_BUCKET_SIZE,
            request_timeout: Duration::from_secs(15),
            drop_keyspace_on_drop: false,
        }
    }

    /// Parses `cassandra://HOST:PORT[,HOST:PORT...]/KEYSPACE[?options]`.
    ///
    /// Options: `replication_factor=N` (`SimpleStrategy`), `dc.NAME=N` (one per data centre,
    /// `NetworkTopologyStrategy`), `bucket_size=N`, `request_timeout_ms=N`. Values are
    /// percent-decoded.
    ///
    /// # Errors
    /// [`PersistenceError::Config`] naming what is wrong.
    pub fn from_url(url: &str) -> Result<Self, PersistenceError> {
        let bad = |what: String| PersistenceError::Config(format!("Cassandra URL `{url}`: {what}"));
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("must start with `{SCHEME}`")))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, keyspace) = location
            .split_once('/')
            .ok_or_else(|| bad("names no keyspace (cassandra://HOST:PORT/KEYSPACE)".into()))?;
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:9042")
                }
            })
            .collect();
        if nodes.is_empty() {
            return Err(bad("names no host".into()));
        }
        let keyspace = decode(keyspace).map_err(bad)?;
        let mut config = Self::new(nodes[0].clone(), keyspace);
        config.nodes = nodes;
        let mut dcs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("option `{pair}` has no value")))?;
            let key = decode(key).map_err(bad)?;
            let value = decode(value).map_err(bad)?;
            let number = |what: &str| {
                value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(format!(
                        "`{what}` must be a positive integer, not `{value}`"
                    ))
                })
            };
            if key == "replication_factor" {
                let factor = u32::try_from(number(&key)?)
                    .map_err(|_| bad("`replication_factor` is too large".into()))?;
                config.replication = Replication::Simple(factor);
            } else if let Some(dc) = key.strip_prefix("dc.") {
                check_dc_name(dc).map_err(bad)?;
                let factor = u32::try_from(number(&key)?)
                    .map_err(|_| bad(format!("`{key}` is too large")))?;
                dcs.push((dc.to_owned(), factor));
            } else if key == "bucket_size" {
                config.bucket_size = number(&key)?;
            } else if key == "request_timeout_ms" {
                config.request_timeout = Duration::from_millis(number(&key)?);
            } else {
                return Err(bad(format!(
                    "unknown option `{key}` (known: replication_factor, dc.NAME, bucket_size, request_timeout_ms)"
                )));
            }
        }
        if !dcs.is_empty() {
            config.replication = Replication::NetworkTopology(dcs);
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the replication of a keyspace the recorder creates.
    #[must_use]
    pub fn replication(mut self, replication: Replication) -> Self {
        self.replication = replication;
        self
    }

    /// Sets the events per partition bucket (only used when the tables are created).
    #[must_use]
    pub fn bucket_size(mut self, events: u64) -> Self {
        self.bucket_size = events;
        self
    }

    /// Drops the whole keyspace when the recorder is dropped: for tests that use a keyspace
    /// each.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    #[must_use]
    pub fn drop_keyspace_on_drop_for_testing(mut self) -> Self {
        self.drop_keyspace_on_drop = true;
        self
    }

    /// Checks the keyspace name (it is written into CQL, which cannot bind identifiers) and
    /// the numbers.
    pub(super) fn validate(&self) -> Result<(), PersistenceError> {
        let ks = &self.keyspace;
        let valid = !ks.is_empty()
            && ks.len() <= 48
            && ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && ks.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if !valid {
            return Err(PersistenceError::Config(format!(
                "Cassandra keyspace `{}` must be 1 to 48 ASCII letters, digits or underscores, starting with a letter",
                ks.escape_debug()
            )));
        }
        if self.bucket_size == 0 || i64::try_from(self.bucket_size).is_err() {
            return Err(PersistenceError::Config(
                "the Cassandra bucket size must be between 1 and 2^63 - 1".into(),
            ));
        }
        if let Replication::NetworkTopology(dcs) = &self.replication {
            for (dc, _) in dcs {
                check_dc_name(dc).map_err(PersistenceError::Config)?;
            }
        }
        Ok(())
    }
}

/// Data-centre names go into the keyspace's CQL text: keep them to a safe alphabet.
fn check_dc_name(dc: &str) -> Result<(), String> {
    if !dc.is_empty()
        && dc
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "data-centre name `{}` must be ASCII letters, digits, `_`, `-` or `.`",
            dc.escape_debug()
        ))
    }
}

/// Percent-decodes one URL component.
fn decode(text: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("`{text}` is not UTF-8 once percent-decoded"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{CassandraConfig, Replication};

    #[test]
    fn parses_urls() {
        let config = CassandraConfig::from_url("cassandra://127.0.0.1:9042/events").unwrap();
        assert_eq!(config.nodes, vec!["127.0.0.1:9042"]);
        assert_eq!(config.keyspace, "events");
        assert_eq!(config.replication, Replication::Simple(1));
        let config = CassandraConfig::from_url(
            "cassandra://a,b:9043/ks?dc.eu-west=3&dc.us=2&bucket_size=500&request_timeout_ms=100",
        )
        .unwrap();
        assert_eq!(config.nodes, vec!["a:9042", "b:9043"]);
        assert_eq!(config.bucket_size, 500);
        assert_eq!(
            config.replication,
            Replication::NetworkTopology(vec![("eu-west".into(), 3), ("us".into(), 2)])
        );
        assert!(config.replication.cql().contains("'eu-west': 3"));
        let config = CassandraConfig::from_url("cassandra://h/k%5F1?replication_factor=3").unwrap();
        assert_eq!(config.keyspace, "k_1");
        assert_eq!(config.replication, Replication::Simple(3));
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "postgres://x/y",
            "cassandra://127.0.0.1",
            "cassandra:///ks",
            "cassandra://h/",
            "cassandra://h/ks;drop",
            "cassandra://h/1ks",
            "cassandra://h/ks?bucket_size=0",
            "cassandra://h/ks?replication_factor=x",
            "cassandra://h/ks?dc.a'b=1",
            "cassandra://h/ks?what=1",
            "cassandra://h/ks?flag",
            "cassandra://h/%FF",
        ] {
            let error = CassandraConfig::from_url(url).expect_err(url);
            assert!(
                matches!(error, crate::PersistenceError::Config(_)),
                "{url}: {error}"
            );
        }
    }
}
