//! `log`: the notification log, and with `--follow` new events as they commit.

use std::time::Duration;

use clap::Args;
use eventsourcing::NotificationQuery;

use crate::error::CliError;
use crate::output::{format_time, EventLine, Out};
use crate::store::Create;
use crate::{interrupted, Context};

/// Arguments of `log`.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Only events after this position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Only events with this topic (repeat for several).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// One JSON object a line.
    #[arg(long)]
    json: bool,
    /// Keep waiting for new events until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// At most this many events (without `--follow`).
    #[arg(long)]
    limit: Option<u64>,
    /// How often `--follow` asks for new events, in milliseconds.
    #[arg(long, default_value_t = 250)]
    poll_ms: u64,
}

/// Events read a page at a time.
const PAGE: usize = 1000;

pub(crate) fn run(context: &Context, args: &LogArgs) -> Result<(), CliError> {
    let store = context.open(Create::No)?;
    let mut out = Out::new();
    let mut from = args.after.saturating_add(1);
    let mut left = if args.follow { None } else { args.limit };
    let mut page = Vec::new();
    loop {
        if interrupted() {
            // Ctrl-C is how `--follow` ends: success.
            out.flush()?;
            return if args.follow {
                Ok(())
            } else {
                Err(CliError::Interrupted)
            };
        }
        page.clear();
        let limit = left.map_or(PAGE, |l| usize::try_from(l).unwrap_or(PAGE).min(PAGE));
        let query = NotificationQuery::new(from, limit).topics(args.topics.iter().cloned());
        store.select_notifications_into(&query, &mut page)?;
        for event in &page {
            if args.json {
                out.json(&EventLine::from_event(event, true))?;
            } else {
                out.line(&format!(
                    "{}\t{}\t{}\tv{}\t{}",
                    event.position.unwrap_or_default(),
                    format_time(event.metadata.timestamp),
                    event.stream_id,
                    event.version,
                    event.topic
                ))?;
            }
        }
        if out.closed() {
            return Ok(());
        }
        if let Some(last) = page.last().and_then(|e| e.position) {
            from = last.saturating_add(1);
        }
        if let Some(l) = left.as_mut() {
            *l = l.saturating_sub(u64::try_from(page.len()).unwrap_or(u64::MAX));
            if *l == 0 {
                break;
            }
        }
        if page.len() < limit {
            if !args.follow {
                break;
            }
            out.flush()?;
            std::thread::sleep(Duration::from_millis(args.poll_ms.clamp(10, 60_000)));
        }
    }
    out.flush()
}
