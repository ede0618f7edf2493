//! `streams`: stream ids with their version and last-modified time.

use std::ops::ControlFlow;

use clap::Args;
use serde_json::json;

use crate::error::CliError;
use crate::output::{format_time, Out};
use crate::store::Create;
use crate::Context;

/// Arguments of `streams`.
#[derive(Debug, Args)]
pub(crate) struct StreamsArgs {
    /// Only streams whose id starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// At most this many streams.
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON object a line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(context: &Context, args: &StreamsArgs) -> Result<(), CliError> {
    let store = context.open(Create::No)?;
    let mut out = Out::new();
    let mut failed = Ok(());
    store.for_each_stream(&args.prefix, args.limit, &mut |s| {
        let written = if args.json {
            out.json(&json!({
                "stream_id": s.stream_id,
                "version": s.version,
                "events": s.events,
                "last_modified": format_time(s.last_modified),
            }))
        } else {
            out.line(&format!(
                "{}\t{}\t{}",
                s.stream_id,
                s.version,
                format_time(s.last_modified)
            ))
        };
        match written {
            Ok(()) if !out.closed() => ControlFlow::Continue(()),
            Ok(()) => ControlFlow::Break(()),
            Err(e) => {
                failed = Err(e);
                ControlFlow::Break(())
            }
        }
    })?;
    failed?;
    out.flush()
}
