//! The tool's error type and its exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use eventsourcing::PersistenceError;
use thiserror::Error;

/// The exit codes, one per kind of failure (also listed by `eventsourcing --help` and in
/// `docs/CLI.md`).
pub mod exit {
    /// The command did what it was asked (and `verify` found nothing wrong).
    pub const OK: u8 = 0;
    /// `verify` found problems (it lists the first ones).
    pub const PROBLEMS: u8 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The store URL or another setting is malformed.
    pub const CONFIG: u8 = 3;
    /// The store cannot be reached (server down, file cannot be opened) or stays busy.
    pub const UNAVAILABLE: u8 = 4;
    /// An input file is missing, unreadable, malformed or truncated.
    pub const INPUT: u8 = 5;
    /// The store or the export file was written by a newer version than this tool.
    pub const TOO_NEW: u8 = 6;
    /// The backend cannot do this (e.g. a global log on Cassandra).
    pub const UNSUPPORTED: u8 = 7;
    /// The target store refused the events (a conflict with events already there).
    pub const REFUSED: u8 = 8;
    /// Stored data could not be read (a corrupt row, a payload that does not decode).
    pub const CORRUPT: u8 = 9;
    /// Any other failure of the store or of the output.
    pub const FAILED: u8 = 10;
    /// The stream asked for has no events.
    pub const NOT_FOUND: u8 = 11;
    /// Interrupted by Ctrl-C (work committed so far stays; an import resumes from there).
    pub const INTERRUPTED: u8 = 130;
}

/// Everything that stops a command, with the exit code it ends the process with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// A malformed URL or setting.
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] PersistenceError),
    /// An input file is missing, unreadable, malformed or truncated.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An export file of a newer format than this tool reads.
    #[error("{}: export format version {found} is newer than this tool reads (up to {supported}): use a newer `eventsourcing`", path.display())]
    FormatTooNew {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u64,
        /// The newest this tool reads.
        supported: u64,
    },
    /// `verify` found problems.
    #[error("verify found {0} problem(s)")]
    Problems(u64),
    /// The stream has no events.
    #[error("stream `{0}` has no events")]
    NotFound(String),
    /// Writing the output failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// The output (a file name or "standard output").
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl CliError {
    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => exit::CONFIG,
            Self::Store(error) => store_exit_code(error),
            Self::Input { .. } => exit::INPUT,
            Self::FormatTooNew { .. } => exit::TOO_NEW,
            Self::Problems(_) => exit::PROBLEMS,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Output { .. } => exit::FAILED,
            Self::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The exit code as a process [`ExitCode`].
    #[must_use]
    pub fn to_exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }

    pub(crate) fn output(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Output {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Input {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<eventsourcing::ApplicationError> for CliError {
    fn from(error: eventsourcing::ApplicationError) -> Self {
        match error {
            eventsourcing::ApplicationError::Persistence(e) => Self::Store(e),
            eventsourcing::ApplicationError::Config(message) => Self::Config(message),
            other => Self::Config(other.to_string()),
        }
    }
}

fn store_exit_code(error: &PersistenceError) -> u8 {
    match error {
        PersistenceError::Config(_) => exit::CONFIG,
        PersistenceError::Unavailable { .. } | PersistenceError::Busy { .. } => exit::UNAVAILABLE,
        PersistenceError::SchemaVersion { .. } => exit::TOO_NEW,
        PersistenceError::Unsupported { .. } => exit::UNSUPPORTED,
        PersistenceError::Conflict(_)
        | PersistenceError::AlreadyTracked { .. }
        | PersistenceError::InvalidBatch { .. }
        | PersistenceError::LimitExceeded { .. }
        | PersistenceError::EventNotFound { .. } => exit::REFUSED,
        PersistenceError::Corrupt { .. }
        | PersistenceError::Decode { .. }
        | PersistenceError::Transcode { .. } => exit::CORRUPT,
        _ => exit::FAILED,
    }
}
