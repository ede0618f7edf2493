//! What the raw baselines share: payloads encoded and decoded with plain serde, the fold, and
//! the operations every baseline store implements.

use serde::{Deserialize, Serialize};

use crate::domain::RawPosted;
use crate::R;

/// The creation payload as a raw baseline writes it (the same fields as `Ledger.Opened`).
#[derive(Serialize)]
struct OpenedOut<'a> {
    name: String,
    currency: &'a str,
    description: &'a str,
}

/// The posting payload as a raw baseline writes it (the same fields as `Ledger.Posted`).
#[derive(Serialize)]
struct PostedOut<'a> {
    amount: i64,
    currency: &'a str,
    reference: String,
    memo: &'a str,
}

/// The creation payload as a raw baseline reads it.
#[derive(Debug, Deserialize)]
pub struct RawOpened {
    /// The name.
    #[allow(dead_code)]
    pub name: String,
    /// The currency.
    #[allow(dead_code)]
    pub currency: String,
    /// The description.
    #[allow(dead_code)]
    pub description: String,
}

/// The baseline's event enum, dispatched on the topic column.
#[derive(Debug)]
pub enum RawEvent {
    /// `Ledger.Opened`.
    Opened(#[allow(dead_code)] RawOpened),
    /// `Ledger.Posted`.
    Posted(RawPosted),
}

/// The topics, the same strings the framework stores.
#[derive(Debug, Clone)]
pub struct Topics {
    /// The creation topic.
    pub opened: &'static str,
    /// The posting topic.
    pub posted: &'static str,
}

impl Topics {
    /// Reads the topics off recorded events.
    #[must_use]
    pub fn new() -> Self {
        let mut ledger = crate::domain::open(0);
        crate::domain::post(&mut ledger, 0);
        let pending = ledger.pending_events();
        Self {
            opened: pending[0].topic(),
            posted: pending[1].topic(),
        }
    }
}

/// The `i`-th creation payload, as the framework's `domain::open(i)` would write it.
///
/// # Errors
/// Never in practice (serde_json into a Vec).
pub fn opened_payload(i: u64) -> R<Vec<u8>> {
    Ok(serde_json::to_vec(&OpenedOut {
        name: format!("ledger {i}"),
        currency: "EUR",
        description:
            "Operating account for the benchmark, with a description long enough to be realistic.",
    })?)
}

/// The `i`-th posting payload, as the framework's `domain::post(_, i)` would write it.
///
/// # Errors
/// Never in practice.
pub fn posted_payload(i: u64) -> R<Vec<u8>> {
    Ok(serde_json::to_vec(&PostedOut {
        amount: i64::try_from(i % 10_000).unwrap_or(0) + 1,
        currency: "EUR",
        reference: format!("INV-2026-11-{i:08}"),
        memo:
            "Consulting services rendered in November; payable within thirty days of receipt, net.",
    })?)
}

/// Decodes a payload by its topic.
///
/// # Errors
/// An unknown topic or bad JSON.
pub fn decode(topics: &Topics, topic: &str, payload: &[u8]) -> R<RawEvent> {
    if topic == topics.posted {
        Ok(RawEvent::Posted(serde_json::from_slice(payload)?))
    } else if topic == topics.opened {
        Ok(RawEvent::Opened(serde_json::from_slice(payload)?))
    } else {
        Err(format!("unknown topic {topic}").into())
    }
}

/// The baseline's state: postings and their total, as `Ledger` keeps them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Events applied.
    pub events: u64,
    /// Postings.
    pub entries: u64,
    /// Their total.
    pub total: i64,
}

impl Folded {
    /// Applies one event.
    pub fn apply(&mut self, event: RawEvent) {
        self.events += 1;
        match event {
            RawEvent::Opened(_) => {
                self.entries = 0;
                self.total = 0;
            }
            RawEvent::Posted(p) => {
                self.entries += 1;
                self.total += p.amount;
            }
        }
    }
}

/// What every raw baseline store does, the same work as the framework's workloads.
pub trait RawStore {
    /// Creates stream number `i` with its creation event, in its own transaction.
    ///
    /// # Errors
    /// Backend errors.
    fn save_one(&mut self, i: u64) -> R<()>;

    /// Appends `n` postings to `stream` after version `after`, in one transaction.
    ///
    /// # Errors
    /// Backend errors.
    fn append(&mut self, stream: &str, after: u64, n: u64) -> R<()>;

    /// Reads a stream in version order, decodes each payload and folds it.
    ///
    /// # Errors
    /// Backend or decoding errors.
    fn load(&mut self, stream: &str) -> R<Folded>;

    /// Reads the first `limit` events in position order into owned rows; how many were read.
    ///
    /// # Errors
    /// Backend errors.
    fn scan(&mut self, limit: u64) -> R<u64>;

    /// How many events are stored.
    ///
    /// # Errors
    /// Backend errors.
    fn count(&mut self) -> R<u64>;
}

/// Creates a stream with `events` events (the creation event and postings) in appends of at
/// most 1,000 events; returns the stream id.
///
/// # Errors
/// Backend errors.
pub fn populate(store: &mut dyn RawStore, i: u64, events: u64) -> R<String> {
    store.save_one(i)?;
    let stream = last_stream(i);
    let mut version = 1;
    while version < events {
        let n = (events - version).min(1000);
        store.append(&stream, version, n)?;
        version += n;
    }
    Ok(stream)
}

/// The stream id of raw stream number `i` (deterministic, so that populate knows it).
#[must_use]
pub fn last_stream(i: u64) -> String {
    uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, i).to_string()
}
