//! The `eventsourcing` operator tool: list, show, tail, verify, export, import and copy event
//! stores, on every backend the library has (memory, SQLite, PostgreSQL).
//!
//! The binary of this package is `eventsourcing`; its `main` is one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     eventsourcing_cli::run_main()
//! }
//! ```
//!
//! # Embedding: the same commands with your event types
//!
//! A binary of your own that links your event types and calls [`Cli::run`] gets the same
//! commands, decoding and upcasting your events: `show` prints each event as your type's
//! `Debug` form and its JSON at the current schema version, and `verify` decodes every event
//! through your types and reports unknown topics.
//!
//! ```no_run
//! # use eventsourcing::prelude::*;
//! # #[derive(Debug, Clone, Serialize, Deserialize)]
//! # pub struct Dog { name: String }
//! # #[entity]
//! # impl Dog {
//! #     #[event(Registered)]
//! #     fn register(name: String) -> Self { Dog { name } }
//! # }
//! fn main() -> std::process::ExitCode {
//!     eventsourcing_cli::Cli::new().with_events::<DogEvent>().run()
//! }
//! ```
//!
//! Give [`Cli::with_mapper`] the mapper your application stores with when its payloads are
//! compressed or encrypted.
//!
//! # Exit codes
//!
//! Each kind of failure has its own code ([`exit`]); errors are one line on standard error,
//! never a panic or a backtrace.

mod commands;
mod decode;
mod error;
mod output;
mod store;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use eventsourcing::{DomainEvent, Mapper};

pub use error::{exit, CliError};

use decode::TypedDecoder;

/// Set by the Ctrl-C handler; long commands stop between two steps when it is set.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

const EXIT_CODES: &str = "\
Exit codes:
  0    success (and `verify` found nothing wrong)
  1    `verify` found problems
  2    bad command line
  3    malformed store URL or setting
  4    store unreachable or busy
  5    input file missing, unreadable, malformed or truncated
  6    store or export file written by a newer version than this tool
  7    not supported by this backend
  8    the target store refused the events (conflict)
  9    corrupt stored data
  10   other failure of the store or of the output
  11   stream not found
  130  interrupted (Ctrl-C); an import or copy resumes where it stopped";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "eventsourcing",
    version,
    about = "Inspect, verify, export, import and copy event stores.",
    after_help = EXIT_CODES
)]
struct CommandLine {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
struct Global {
    /// The store: `sqlite://PATH`, `postgres://USER@HOST:PORT/DB?schema=NAME` or `memory:`.
    #[arg(long, env = "EVENTSOURCING_URL", global = true)]
    url: Option<String>,
    /// No progress bars, even on a terminal.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream ids with their version and last-modified time.
    Streams(commands::streams::StreamsArgs),
    /// The events of one stream.
    Show(commands::show::ShowArgs),
    /// The notification log (all events in position order); `--follow` waits for new ones.
    Log(commands::log::LogArgs),
    /// Counts: events, streams, topics with sizes and first and last times, snapshots.
    Stats(commands::stats::StatsArgs),
    /// Checks the store; exits 1 and lists the first problems when it finds any.
    Verify(commands::verify::VerifyArgs),
    /// Writes the log to a file of JSON lines (a header, one event a line, a footer).
    Export(commands::transfer::ExportArgs),
    /// Appends the events of an export file, in order; a re-run resumes, never duplicates.
    Import(commands::transfer::ImportArgs),
    /// Copies every event of one store into another, in order; a re-run resumes.
    Copy(commands::transfer::CopyArgs),
}

/// What every command gets: the store URL, the decoders and the output settings.
pub(crate) struct Context {
    url: Option<String>,
    pub(crate) progress: bool,
    pub(crate) decoders: decode::Decoders,
}

impl Context {
    /// The store of `--url` (or `EVENTSOURCING_URL`).
    pub(crate) fn open(
        &self,
        create: store::Create,
    ) -> Result<Arc<dyn eventsourcing::persistence::inspect::Inspect>, CliError> {
        let url = self.url.as_deref().ok_or_else(|| {
            CliError::Config("no store given: pass --url URL or set EVENTSOURCING_URL".into())
        })?;
        store::open(url, create)
    }
}

/// The tool, with the event types and the mapper of the application whose stores it reads.
#[derive(Debug, Clone, Default)]
pub struct Cli {
    mapper: Mapper,
    typed: Vec<TypedDecoderEntry>,
}

#[derive(Clone, Copy)]
struct TypedDecoderEntry(TypedDecoder, &'static str);

impl std::fmt::Debug for TypedDecoderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.1)
    }
}

impl Cli {
    /// The tool with no event types of its own: payloads shown as JSON, upcast through the
    /// topic registry when the binary links registered event types.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes events of type `E` (and registers it in the topic registry): `show` prints
    /// them as `E`'s `Debug` form, `verify` checks that each one decodes, and every topic
    /// unknown to the binary becomes a problem.
    #[must_use]
    pub fn with_events<E: DomainEvent>(mut self) -> Self {
        eventsourcing::domain::register::<E>();
        self.typed.push(TypedDecoderEntry(
            TypedDecoder::of::<E>(),
            std::any::type_name::<E>(),
        ));
        self
    }

    /// Reads payloads through `mapper` (its transcoders: compression, encryption).
    #[must_use]
    pub fn with_mapper(mut self, mapper: Mapper) -> Self {
        self.mapper = mapper;
        self
    }

    /// Runs the command line of this process and returns its exit code (see [`exit`]).
    #[must_use]
    pub fn run(&self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Runs a command line (`args` starts with the program name) and returns its exit code.
    /// Errors are printed as one line on standard error.
    #[must_use]
    pub fn run_from<I, T>(&self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let line = match CommandLine::try_parse_from(args) {
            Ok(line) => line,
            Err(error) => {
                let _ = error.print();
                return ExitCode::from(if error.use_stderr() {
                    exit::USAGE
                } else {
                    exit::OK
                });
            }
        };
        // Another handler (of an embedding binary) may be set already: then Ctrl-C is its.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed));
        match self.execute(line) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(error) => {
                eprintln!("eventsourcing: {error}");
                error.to_exit_code()
            }
        }
    }

    fn execute(&self, line: CommandLine) -> Result<(), CliError> {
        let context = Context {
            url: line.global.url,
            progress: !line.global.quiet,
            decoders: decode::Decoders::new(
                self.mapper.clone(),
                self.typed.iter().map(|t| t.0).collect(),
            ),
        };
        match line.command {
            Command::Streams(args) => commands::streams::run(&context, &args),
            Command::Show(args) => commands::show::run(&context, &args),
            Command::Log(args) => commands::log::run(&context, &args),
            Command::Stats(args) => commands::stats::run(&context, &args),
            Command::Verify(args) => commands::verify::run(&context, &args),
            Command::Export(args) => commands::transfer::export(&context, &args),
            Command::Import(args) => commands::transfer::import(&context, &args),
            Command::Copy(args) => commands::transfer::copy(&context, &args),
        }
    }
}

/// Runs the `eventsourcing` command line of this process with no event types of its own:
/// what the `eventsourcing` binary's `main` does.
#[must_use]
pub fn run_main() -> ExitCode {
    Cli::new().run()
}
