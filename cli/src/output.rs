//! What the commands print: timestamps, the JSON form of an event, progress bars that only
//! appear on a terminal, and a standard output that treats a closed pipe as the end.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use eventsourcing::domain::Timestamp;
use eventsourcing::{StoredEvent, Uuid};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::CliError;

/// A timestamp as RFC 3339 in UTC with microseconds, e.g. `2026-12-01T14:03:07.123456Z`.
pub(crate) fn format_time(at: Timestamp) -> String {
    let micros = at.as_micros();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One event as a JSON object on one line: what `export` writes, `import` reads and
/// `log --json` prints. The payload is kept as JSON when it is JSON on one line, byte for
/// byte; otherwise (a transcoded payload) as hex in `payload_hex`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventLine {
    /// The position in the source's log.
    #[serde(default)]
    pub(crate) position: Option<u64>,
    pub(crate) stream_id: String,
    pub(crate) version: u64,
    pub(crate) topic: String,
    pub(crate) schema_version: u32,
    pub(crate) event_id: Uuid,
    /// Microseconds since the Unix epoch.
    pub(crate) timestamp: i64,
    /// The same, readable (ignored on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) payload_hex: Option<String>,
}

/// The payload as one-line JSON text when it is exactly that.
fn json_payload(payload: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.contains(['\n', '\r']) {
        return None;
    }
    let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
    (raw.get().len() == text.len()).then_some(raw)
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

impl EventLine {
    pub(crate) fn from_event(event: &StoredEvent, with_time: bool) -> Self {
        let payload = json_payload(&event.payload);
        let payload_hex = payload.is_none().then(|| to_hex(&event.payload));
        Self {
            position: event.position,
            stream_id: event.stream_id.clone(),
            version: event.version,
            topic: event.topic.clone(),
            schema_version: event.schema_version,
            event_id: event.metadata.event_id,
            timestamp: event.metadata.timestamp.as_micros(),
            time: with_time.then(|| format_time(event.metadata.timestamp)),
            causation_id: event.metadata.causation_id,
            correlation_id: event.metadata.correlation_id,
            user: event.metadata.user.clone(),
            payload,
            payload_hex,
        }
    }

    /// The stored event this line describes.
    pub(crate) fn into_event(self) -> Result<StoredEvent, String> {
        let payload = match (self.payload, self.payload_hex) {
            (Some(json), None) => json.get().as_bytes().to_vec(),
            (None, Some(hex)) => from_hex(&hex).ok_or("`payload_hex` is not hexadecimal")?,
            _ => return Err("an event needs exactly one of `payload` and `payload_hex`".into()),
        };
        Ok(StoredEvent {
            stream_id: self.stream_id,
            version: self.version,
            topic: self.topic,
            schema_version: self.schema_version,
            payload,
            metadata: eventsourcing::Metadata {
                event_id: self.event_id,
                timestamp: Timestamp::from_micros(self.timestamp),
                causation_id: self.causation_id,
                correlation_id: self.correlation_id,
                user: self.user,
            },
            position: self.position,
        })
    }
}

/// Standard output, buffered; a closed pipe (`eventsourcing log | head`) ends the command
/// quietly instead of failing it.
pub(crate) struct Out {
    inner: io::BufWriter<io::Stdout>,
    closed: bool,
}

impl Out {
    pub(crate) fn new() -> Self {
        Self {
            inner: io::BufWriter::new(io::stdout()),
            closed: false,
        }
    }

    /// Whether the reader went away: commands stop early then.
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }

    fn check(&mut self, result: io::Result<()>) -> Result<(), CliError> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(CliError::output("standard output", e)),
        }
    }

    /// Writes one line.
    pub(crate) fn line(&mut self, text: &str) -> Result<(), CliError> {
        if self.closed {
            return Ok(());
        }
        let result = writeln!(self.inner, "{text}");
        self.check(result)
    }

    /// Writes `value` as one JSON line.
    pub(crate) fn json<T: Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        if self.closed {
            return Ok(());
        }
        let result = serde_json::to_writer(&mut self.inner, value)
            .map_err(io::Error::from)
            .and_then(|()| self.inner.write_all(b"\n"));
        self.check(result)
    }

    /// Flushes what was written (before waiting, in `log --follow`).
    pub(crate) fn flush(&mut self) -> Result<(), CliError> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.check(result)
    }
}

/// A progress bar on standard error with events per second and the time left, shown only
/// when standard error is a terminal (and `--quiet` is not given).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(enabled: bool, total: u64, what: &str) -> Self {
        if !enabled || !io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {human_pos}/{human_len} events, {rate} events/s, {eta} left",
        ) {
            bar.set_style(
                style
                    .with_key(
                        "rate",
                        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}", state.per_sec());
                        },
                    )
                    .progress_chars("=> "),
            );
        }
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar: Some(bar) }
    }

    pub(crate) fn inc(&self, events: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(events);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(
            format_time(Timestamp::from_micros(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            format_time(Timestamp::from_micros(1_796_132_587_000_001)),
            "2026-12-01T13:43:07.000001Z"
        );
        assert_eq!(
            format_time(Timestamp::from_micros(-1)),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn payloads_round_trip() {
        for payload in [&b"{\"a\":1}"[..], b" {\"a\":1}", b"{\n}", b"\x00\xff", b""] {
            let event = StoredEvent {
                stream_id: "s".into(),
                version: 1,
                topic: "T".into(),
                schema_version: 1,
                payload: payload.to_vec(),
                metadata: eventsourcing::Metadata::new(),
                position: Some(1),
            };
            let line =
                serde_json::to_string(&EventLine::from_event(&event, false)).unwrap_or_default();
            let back = serde_json::from_str::<EventLine>(&line)
                .map_err(|e| e.to_string())
                .and_then(EventLine::into_event);
            assert_eq!(back, Ok(event), "{line}");
        }
    }
}
