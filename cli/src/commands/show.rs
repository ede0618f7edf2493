//! `show`: the events of one stream, readable or as JSON lines.

use clap::Args;
use eventsourcing::EventQuery;

use crate::decode::Payload;
use crate::error::CliError;
use crate::output::{format_time, EventLine, Out};
use crate::store::Create;
use crate::Context;

/// Arguments of `show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The stream (aggregate) id.
    stream_id: String,
    /// Start at this version.
    #[arg(long)]
    from_version: Option<u64>,
    /// One JSON object a line (as `export` writes them, plus the decoded event).
    #[arg(long)]
    json: bool,
}

/// Events read a page at a time.
const PAGE: usize = 1000;

pub(crate) fn run(context: &Context, args: &ShowArgs) -> Result<(), CliError> {
    let store = context.open(Create::No)?;
    let mut out = Out::new();
    let mut from = args.from_version.unwrap_or(1);
    let mut shown = 0_u64;
    loop {
        let page = store.select_events(
            &args.stream_id,
            &EventQuery::all().from_version(from).limit(PAGE),
        )?;
        for event in &page {
            print_event(context, &mut out, event, args.json)?;
            shown += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE && !out.closed() => from = last.version + 1,
            _ => break,
        }
    }
    if shown == 0 && args.from_version.is_none() {
        return Err(CliError::NotFound(args.stream_id.clone()));
    }
    out.flush()
}

fn print_event(
    context: &Context,
    out: &mut Out,
    event: &eventsourcing::StoredEvent,
    json: bool,
) -> Result<(), CliError> {
    let payload = context.decoders.read(event);
    if json {
        let mut value = serde_json::to_value(EventLine::from_event(event, true))
            .map_err(|e| CliError::output("standard output", e.into()))?;
        if let Some(object) = value.as_object_mut() {
            match payload {
                Ok(Payload::Typed(decoded)) => {
                    object.insert("event".into(), decoded.current);
                    object.insert("decoded".into(), decoded.debug.into());
                }
                Ok(Payload::Upcast(current)) => {
                    object.insert("event".into(), current);
                }
                Ok(Payload::Json(_)) => {}
                Err(problem) => {
                    object.insert("unreadable".into(), problem.to_string().into());
                }
            }
        }
        return out.json(&value);
    }
    let position = event
        .position
        .map_or_else(String::new, |p| format!("  position {p}"));
    out.line(&format!(
        "v{}  {}  {} (schema {}){position}",
        event.version,
        format_time(event.metadata.timestamp),
        event.topic,
        event.schema_version
    ))?;
    let body = match payload {
        Ok(Payload::Typed(decoded)) => decoded.debug,
        Ok(Payload::Upcast(value) | Payload::Json(value)) => value.to_string(),
        Err(problem) => format!("({problem}) {}", String::from_utf8_lossy(&event.payload)),
    };
    out.line(&format!("    {body}"))?;
    let m = &event.metadata;
    let mut extras = vec![format!("event id {}", m.event_id)];
    if let Some(c) = m.causation_id {
        extras.push(format!("caused by {c}"));
    }
    if let Some(c) = m.correlation_id {
        extras.push(format!("correlation {c}"));
    }
    for (k, v) in &m.user {
        extras.push(format!("{k}={v}"));
    }
    out.line(&format!("    {}", extras.join(", ")))
}
