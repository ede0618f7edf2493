//! `stats`: events, streams, topics with counts, sizes, first and last timestamps, snapshots.

use clap::Args;
use serde_json::json;

use crate::error::CliError;
use crate::output::{format_time, Out};
use crate::store::Create;
use crate::Context;

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(context: &Context, args: &StatsArgs) -> Result<(), CliError> {
    let store = context.open(Create::No)?;
    let stats = store.store_stats()?;
    let max_position = store.max_position()?;
    let first = stats.topics.iter().map(|t| t.first).min();
    let last = stats.topics.iter().map(|t| t.last).max();
    let mut out = Out::new();
    if args.json {
        out.json(&json!({
            "backend": store.backend_name(),
            "events": stats.events(),
            "payload_bytes": stats.payload_bytes(),
            "streams": stats.streams,
            "max_position": max_position,
            "first": first.map(format_time),
            "last": last.map(format_time),
            "snapshots": stats.snapshots,
            "snapshot_bytes": stats.snapshot_bytes,
            "tracking_records": stats.tracking_records,
            "topics": stats.topics.iter().map(|t| json!({
                "topic": t.topic,
                "events": t.events,
                "payload_bytes": t.payload_bytes,
                "first": format_time(t.first),
                "last": format_time(t.last),
            })).collect::<Vec<_>>(),
        }))?;
        return out.flush();
    }
    let time = |t: Option<eventsourcing::Timestamp>| t.map_or_else(|| "-".to_owned(), format_time);
    out.line(&format!("backend           {}", store.backend_name()))?;
    out.line(&format!("events            {}", stats.events()))?;
    out.line(&format!("payload bytes     {}", stats.payload_bytes()))?;
    out.line(&format!("streams           {}", stats.streams))?;
    out.line(&format!("max position      {max_position}"))?;
    out.line(&format!("first event       {}", time(first)))?;
    out.line(&format!("last event        {}", time(last)))?;
    out.line(&format!(
        "snapshots         {} ({} bytes)",
        stats.snapshots, stats.snapshot_bytes
    ))?;
    out.line(&format!("tracking records  {}", stats.tracking_records))?;
    if !stats.topics.is_empty() {
        out.line("")?;
        out.line("topic\tevents\tpayload bytes\tfirst\tlast")?;
        for t in &stats.topics {
            out.line(&format!(
                "{}\t{}\t{}\t{}\t{}",
                t.topic,
                t.events,
                t.payload_bytes,
                format_time(t.first),
                format_time(t.last)
            ))?;
        }
    }
    out.flush()
}
