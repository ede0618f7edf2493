//! `verify`: checks a whole store and lists the first problems it finds.
//!
//! One pass over the log in position order checks that positions increase, that each
//! stream's versions run 1, 2, 3... in position order, and that each payload reads (through
//! the transcoders, as JSON, as a known topic and through the user's types when the binary
//! has them). Then snapshots are compared with their streams, tracking records with their
//! upstreams (those given with `--upstream`), and SQLite runs its integrity check. Memory:
//! one entry (stream id and version) per stream.

use std::collections::HashMap;
use std::ops::ControlFlow;

use clap::Args;
use eventsourcing::NotificationQuery;

use crate::decode::Unreadable;
use crate::error::CliError;
use crate::output::{Out, Progress};
use crate::store::{self, Create};
use crate::{interrupted, Context};

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Checks the tracking records of upstream NAME against the log of the store at URL
    /// (repeat for several); tracking records of other upstreams are listed as not checked.
    #[arg(long = "upstream", value_name = "NAME=URL")]
    upstreams: Vec<String>,
    /// List at most this many problems (all are counted).
    #[arg(long, default_value_t = 20)]
    max_problems: usize,
}

/// Events read a page at a time.
const PAGE: usize = 1000;

/// The problems found, the first few kept.
struct Problems {
    out: Out,
    listed: usize,
    max: usize,
    count: u64,
}

impl Problems {
    fn report(&mut self, what: String) -> Result<(), CliError> {
        self.count += 1;
        if self.listed < self.max {
            self.listed += 1;
            self.out.line(&format!("problem: {what}"))?;
        }
        Ok(())
    }
}

fn at(stream_id: &str, version: u64, position: Option<u64>) -> String {
    match position {
        Some(p) => format!("stream `{stream_id}` version {version} position {p}"),
        None => format!("stream `{stream_id}` version {version}"),
    }
}

pub(crate) fn run(context: &Context, args: &VerifyArgs) -> Result<(), CliError> {
    let upstreams = args
        .upstreams
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, url)| (name.to_owned(), url.to_owned()))
                .ok_or_else(|| CliError::Config(format!("--upstream `{pair}`: expected NAME=URL")))
        })
        .collect::<Result<HashMap<_, _>, _>>()?;
    let store = context.open(Create::No)?;
    let mut problems = Problems {
        out: Out::new(),
        listed: 0,
        max: args.max_problems,
        count: 0,
    };
    let total = store.store_stats()?.events();
    let progress = Progress::new(context.progress, total, "verify");

    // The log: positions, versions, payloads.
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut last_position = 0_u64;
    let mut events = 0_u64;
    let mut page = Vec::new();
    let mut from = 1;
    loop {
        if interrupted() {
            return Err(CliError::Interrupted);
        }
        page.clear();
        if let Err(error) =
            store.select_notifications_into(&NotificationQuery::new(from, PAGE), &mut page)
        {
            problems.report(format!(
                "the log cannot be read after position {last_position}: {error}"
            ))?;
            break;
        }
        for event in &page {
            events += 1;
            let Some(position) = event.position else {
                problems.report(format!(
                    "{}: the log returned an event without a position",
                    at(&event.stream_id, event.version, None)
                ))?;
                continue;
            };
            let here = at(&event.stream_id, event.version, Some(position));
            if position <= last_position {
                problems.report(format!(
                    "{here}: position does not increase (after position {last_position})"
                ))?;
            }
            last_position = last_position.max(position);
            let previous = versions.get(&event.stream_id).copied().unwrap_or(0);
            if event.version != previous + 1 {
                let what = if event.version > previous + 1 {
                    format!(
                        "a gap: versions {} to {} are missing",
                        previous + 1,
                        event.version - 1
                    )
                } else {
                    format!("out of order: it follows version {previous}")
                };
                problems.report(format!("{here}: {what}"))?;
            }
            if event.version > previous {
                versions.insert(event.stream_id.clone(), event.version);
            }
            match context.decoders.read(event) {
                Ok(_) => {}
                Err(Unreadable::UnknownTopic) => {
                    problems.report(format!("{here}: unknown topic `{}`", event.topic))?
                }
                Err(other) => problems.report(format!("{here}: {other}"))?,
            }
        }
        progress.inc(u64::try_from(page.len()).unwrap_or(0));
        match page.last().and_then(|e| e.position) {
            Some(last) if page.len() == PAGE => from = last.saturating_add(1),
            _ => break,
        }
    }
    progress.finish();

    // Snapshots: each one needs events at or above its version.
    let mut snapshots = 0_u64;
    let mut failed = Ok(());
    store.for_each_snapshot(&mut |s| {
        snapshots += 1;
        let found = match versions.get(&s.stream_id) {
            None => Some(format!(
                "snapshot of stream `{}` at version {}: the stream has no events",
                s.stream_id, s.version
            )),
            Some(&last) if s.version > last => Some(format!(
                "snapshot of stream `{}` at version {}: ahead of the stream's last event (version {last})",
                s.stream_id, s.version
            )),
            Some(_) => None,
        };
        match found.map(|f| problems.report(f)) {
            Some(Err(e)) => {
                failed = Err(e);
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    })?;
    failed?;

    // Tracking records: not ahead of their upstream's log.
    let tracking = match store.tracking_summaries() {
        Ok(tracking) => tracking,
        Err(eventsourcing::PersistenceError::Unsupported { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut checked = 0_usize;
    for record in &tracking {
        let Some(url) = upstreams.get(&record.upstream) else {
            if record.upstream.starts_with("eventsourcing-cli/") {
                problems.out.line(&format!(
                    "note: `{}` records an import or copy into this store (source position {})",
                    record.upstream, record.max_position
                ))?;
                continue;
            }
            problems.out.line(&format!(
                "note: tracking records of upstream `{}` (up to position {}) not checked: give --upstream {}=URL",
                record.upstream, record.max_position, record.upstream
            ))?;
            continue;
        };
        checked += 1;
        let upstream = store::open(url, Create::No)?;
        let upstream_max = upstream.max_position()?;
        if record.max_position > upstream_max {
            problems.report(format!(
                "tracking record of upstream `{}` at position {}: ahead of that log, which ends at position {upstream_max}",
                record.upstream, record.max_position
            ))?;
        }
    }

    // The backend's own check.
    for line in store.integrity_check()? {
        problems.report(format!("{} integrity check: {line}", store.backend_name()))?;
    }

    let summary = format!(
        "{events} events in {} streams, {snapshots} snapshots, {} tracked upstreams checked",
        versions.len(),
        checked
    );
    if problems.count > 0 {
        if problems.count > u64::try_from(problems.listed).unwrap_or(u64::MAX) {
            problems.out.line(&format!(
                "... and {} more",
                problems.count - u64::try_from(problems.listed).unwrap_or(0)
            ))?;
        }
        problems
            .out
            .line(&format!("FAILED: {} problem(s); {summary}", problems.count))?;
        problems.out.flush()?;
        return Err(CliError::Problems(problems.count));
    }
    problems.out.line(&format!("ok: {summary}"))?;
    problems.out.flush()
}
