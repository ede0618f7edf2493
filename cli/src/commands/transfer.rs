//! `export`, `import` and `copy`: moving a log between stores, in position order.
//!
//! The target assigns its own positions, in the same order as the source's. Every batch is
//! committed through the target's event store together with a tracking record of the source
//! positions it covers (upstream `eventsourcing-cli/import/EXPORT_ID` or
//! `eventsourcing-cli/copy/SOURCE`), in one transaction: a re-run skips what is tracked, so
//! an interrupted import resumes where it stopped and never duplicates an event.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use eventsourcing::persistence::inspect::Inspect;
use eventsourcing::persistence::Limits;
use eventsourcing::{
    EventStore, NotificationQuery, ProcessRecorder, Storage, StoredEvent, StreamAppend, Tracking,
    Uuid,
};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::output::{format_time, EventLine, Out, Progress};
use crate::store::{self, Create};
use crate::{interrupted, Context};

/// The name of the export format, in the header.
const FORMAT: &str = "eventsourcing-export";
/// The export format version this tool writes and the newest it reads.
const FORMAT_VERSION: u64 = 1;
/// Events read from the source and committed to the target at a time (at most).
const BATCH: usize = 1000;

/// Arguments of `export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The file to write (`-` for standard output).
    file: PathBuf,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The export file to read.
    file: PathBuf,
}

/// Arguments of `copy`.
#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The source store.
    #[arg(long)]
    from: String,
    /// The target store (created if needed).
    #[arg(long)]
    to: String,
}

/// The first line of an export file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    format_version: u64,
    export_id: Uuid,
    #[serde(default)]
    source_backend: String,
    #[serde(default)]
    exported_at: String,
    /// The events were read up to this position of the source.
    #[serde(default)]
    max_position: u64,
}

/// The last line: how many events the file holds. A file without it is truncated.
#[derive(Debug, Serialize, Deserialize)]
struct Footer {
    end: bool,
    events: u64,
}

/// Visits the source's log up to its current end, from `after + 1`, a page at a time.
fn read_log(
    source: &dyn Inspect,
    after: u64,
    mut visit: impl FnMut(&[StoredEvent]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let end = source.max_position()?;
    let mut from = after.saturating_add(1);
    let mut page = Vec::with_capacity(BATCH);
    while from <= end {
        if interrupted() {
            return Err(CliError::Interrupted);
        }
        page.clear();
        source.select_notifications_into(
            &NotificationQuery::new(from, BATCH).to_position(end),
            &mut page,
        )?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        visit(&page)?;
        from = last.saturating_add(1);
    }
    Ok(())
}

pub(crate) fn export(context: &Context, args: &ExportArgs) -> Result<(), CliError> {
    let source = context.open(Create::No)?;
    let to_stdout = args.file.as_os_str() == "-";
    let what = args.file.display().to_string();
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout())
    } else {
        Box::new(File::create(&args.file).map_err(|e| CliError::output(&what, e))?)
    };
    let mut sink = BufWriter::with_capacity(1 << 16, sink);
    let io = |e: std::io::Error| CliError::output(&what, e);
    let json = |sink: &mut BufWriter<Box<dyn Write>>,
                value: &dyn erased::Line|
     -> Result<(), CliError> { value.write(sink).map_err(io) };
    let header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        export_id: Uuid::now_v7(),
        source_backend: source.backend_name().into(),
        exported_at: format_time(eventsourcing::Timestamp::now()),
        max_position: source.max_position()?,
    };
    json(&mut sink, &header)?;
    let progress = Progress::new(context.progress, source.store_stats()?.events(), "export");
    let mut events = 0_u64;
    read_log(source.as_ref(), 0, |page| {
        for event in page {
            json(&mut sink, &EventLine::from_event(event, false))?;
        }
        let n = u64::try_from(page.len()).unwrap_or(0);
        events += n;
        progress.inc(n);
        Ok(())
    })?;
    json(&mut sink, &Footer { end: true, events })?;
    sink.flush().map_err(io)?;
    progress.finish();
    if !to_stdout {
        let mut out = Out::new();
        out.line(&format!("exported {events} events to {what}"))?;
        out.flush()?;
    }
    Ok(())
}

/// Serialising the three kinds of line through one closure.
mod erased {
    use std::io::Write;

    pub(super) trait Line {
        fn write(&self, sink: &mut dyn Write) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize> Line for T {
        fn write(&self, mut sink: &mut dyn Write) -> std::io::Result<()> {
            serde_json::to_writer(&mut sink, self)?;
            sink.write_all(b"\n")
        }
    }
}

/// Appends source events to the target in order, a batch at a time, each batch with its
/// tracking record.
struct Importer {
    store: EventStore,
    upstream: String,
    /// Source positions up to this one are in the target already.
    resume_after: u64,
    batch: Vec<StreamAppend>,
    in_batch: HashSet<String>,
    events_in_batch: usize,
    first: u64,
    last: u64,
    imported: u64,
    skipped: u64,
}

impl Importer {
    fn new(target: Arc<dyn Inspect>, upstream: String) -> Result<Self, CliError> {
        let resume_after = target.max_tracking_position(&upstream)?.unwrap_or(0);
        let recorder: Arc<dyn Storage> = target;
        Ok(Self {
            store: EventStore::new(recorder).with_limits(Limits::unlimited()),
            upstream,
            resume_after,
            batch: Vec::new(),
            in_batch: HashSet::new(),
            events_in_batch: 0,
            first: 0,
            last: 0,
            imported: 0,
            skipped: 0,
        })
    }

    fn push(&mut self, event: StoredEvent) -> Result<(), String> {
        let position = event.position.ok_or("an event has no position")?;
        if position <= self.last {
            return Err(format!(
                "position {position} does not follow position {}: the source's positions must increase",
                self.last
            ));
        }
        if position <= self.resume_after {
            self.skipped += 1;
            return Ok(());
        }
        let same_stream = self
            .batch
            .last()
            .is_some_and(|a| a.stream_id == event.stream_id);
        if !same_stream && self.in_batch.contains(&event.stream_id) {
            // A stream already earlier in this batch: its positions would come out of order.
            self.flush().map_err(|e| e.to_string())?;
        }
        if self.events_in_batch == 0 {
            self.first = position;
        }
        self.last = position;
        self.events_in_batch += 1;
        match self.batch.last_mut() {
            Some(append) if append.stream_id == event.stream_id => append.events.push(event),
            _ => {
                self.in_batch.insert(event.stream_id.clone());
                self.batch.push(StreamAppend {
                    stream_id: event.stream_id.clone(),
                    expected_version: event.version.saturating_sub(1),
                    events: vec![event],
                });
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CliError> {
        if self.events_in_batch == 0 {
            return Ok(());
        }
        let tracking = Tracking::page(self.upstream.clone(), self.first, self.last);
        self.store
            .commit(&self.batch, Some(&tracking), Vec::new())?;
        self.imported += u64::try_from(self.events_in_batch).unwrap_or(0);
        self.batch.clear();
        self.in_batch.clear();
        self.events_in_batch = 0;
        Ok(())
    }
}

/// Reads the footer (the last line) of an export file; an error names what is wrong.
fn read_footer(path: &Path, file: &mut File) -> Result<(Footer, u64), CliError> {
    let len = file
        .metadata()
        .map_err(|e| CliError::input(path, e.to_string()))?
        .len();
    let tail_len = len.min(4096);
    let start = len - tail_len;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| CliError::input(path, e.to_string()))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| CliError::input(path, e.to_string()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| CliError::input(path, e.to_string()))?;
    let truncated = || {
        CliError::input(
            path,
            "the file is truncated: it does not end with the export's footer line",
        )
    };
    let body = tail.strip_suffix(b"\n").ok_or_else(truncated)?;
    let line_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let footer: Footer = serde_json::from_slice(&body[line_start..]).map_err(|_| truncated())?;
    if !footer.end {
        return Err(truncated());
    }
    let offset = start + u64::try_from(line_start).unwrap_or(0);
    Ok((footer, offset))
}

pub(crate) fn import(context: &Context, args: &ImportArgs) -> Result<(), CliError> {
    let path = args.file.as_path();
    let mut file = File::open(path).map_err(|e| CliError::input(path, e.to_string()))?;
    let (footer, footer_offset) = read_footer(path, &mut file)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    let read_line = |reader: &mut BufReader<File>, line: &mut String| {
        line.clear();
        reader
            .read_line(line)
            .map_err(|e| CliError::input(path, e.to_string()))
    };
    let mut offset = u64::try_from(read_line(&mut reader, &mut line)?).unwrap_or(0);
    let header: Header = serde_json::from_str(&line)
        .ok()
        .filter(|h: &Header| h.format == FORMAT)
        .ok_or_else(|| {
            CliError::input(path, "not an eventsourcing export file (no header line)")
        })?;
    if header.format_version > FORMAT_VERSION {
        return Err(CliError::FormatTooNew {
            path: path.to_owned(),
            found: header.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let target = context.open(Create::Yes)?;
    let upstream = format!("eventsourcing-cli/import/{}", header.export_id);
    let mut importer = Importer::new(target, upstream)?;
    let progress = Progress::new(context.progress, footer.events, "import");
    let mut line_number = 1_u64;
    let mut events = 0_u64;
    while offset < footer_offset {
        let n = read_line(&mut reader, &mut line)?;
        if n == 0 {
            break;
        }
        offset += u64::try_from(n).unwrap_or(0);
        line_number += 1;
        events += 1;
        let bad = |reason: String| CliError::input(path, format!("line {line_number}: {reason}"));
        let event = serde_json::from_str::<EventLine>(&line)
            .map_err(|e| bad(e.to_string()))
            .and_then(|l| l.into_event().map_err(&bad))?;
        if interrupted() {
            // Only whole batches were committed, each with its tracking record: a re-run
            // resumes after the last one.
            return Err(CliError::Interrupted);
        }
        importer.push(event).map_err(bad)?;
        if importer.events_in_batch >= BATCH {
            importer.flush()?;
        }
        progress.inc(1);
    }
    if events != footer.events {
        return Err(CliError::input(
            path,
            format!(
                "the file holds {events} events but its footer says {}: it is damaged",
                footer.events
            ),
        ));
    }
    importer.flush()?;
    progress.finish();
    let mut out = Out::new();
    out.line(&format!(
        "imported {} events ({} already there)",
        importer.imported, importer.skipped
    ))?;
    out.flush()
}

pub(crate) fn copy(context: &Context, args: &CopyArgs) -> Result<(), CliError> {
    let source = store::open(&args.from, Create::No)?;
    let target = store::open(&args.to, Create::Yes)?;
    let upstream = format!("eventsourcing-cli/copy/{}", source_name(&args.from));
    let mut importer = Importer::new(target, upstream)?;
    let progress = Progress::new(context.progress, source.store_stats()?.events(), "copy");
    let after = importer.resume_after;
    importer.skipped = 0;
    read_log(source.as_ref(), after, |page| {
        for event in page {
            importer.push(event.clone()).map_err(|reason| {
                CliError::Store(eventsourcing::PersistenceError::Corrupt {
                    detail: format!("the log of {}: {reason}", store::display_url(&args.from)),
                })
            })?;
        }
        importer.flush()?;
        progress.inc(u64::try_from(page.len()).unwrap_or(0));
        Ok(())
    })?;
    importer.flush()?;
    progress.finish();
    let mut out = Out::new();
    out.line(&format!("copied {} events", importer.imported))?;
    out.flush()
}

/// A stable name for the source of a copy: its URL without password, with a SQLite path made
/// absolute.
fn source_name(url: &str) -> String {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if let Ok(absolute) = std::fs::canonicalize(path) {
            return format!("sqlite://{}", absolute.display());
        }
    }
    store::display_url(url)
}
