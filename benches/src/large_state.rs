//! Recording on an aggregate with a large state (10,000 list entries): the cost of a recorded
//! event must be that of the event, not of the state. No store is involved: the baseline is
//! the same work by hand (change the struct in place, keep the event with a fresh id and
//! timestamp, as an aggregate's pending event is kept).

use std::hint::black_box;

use eventsourcing::domain::Timestamp;
use eventsourcing::prelude::*;
use uuid::Uuid;

use crate::{Outcome, Params, R};

/// Entries in the state before the measured events are recorded.
pub const ENTRIES: u64 = 10_000;
/// Events recorded per command (and per batch of the baseline).
pub const BATCH: u64 = 100;

/// One entry of the book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    amount: i64,
    reference: String,
}

/// A book holding every entry: a large state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Book {
    entries: Vec<Entry>,
}

/// A command refused by the book.
#[derive(Debug)]
pub struct Refused;

#[entity]
impl Book {
    /// A book was opened with `size` entries.
    #[event(Opened)]
    pub fn open(size: u64) -> Self {
        Book {
            entries: (0..size)
                .map(|i| Entry {
                    amount: i64::try_from(i).unwrap_or(0),
                    reference: format!("INV-{i:08}"),
                })
                .collect(),
        }
    }

    /// An entry was added.
    #[event(Entered)]
    pub fn enter(&mut self, amount: i64, reference: String) {
        self.entries.push(Entry { amount, reference });
    }

    /// Enters `count` entries, refusing a negative amount first: it cannot fail after
    /// recording, so it needs no rollback.
    pub fn enter_batch(&mut self, count: u64, amount: i64) -> Result<(), Refused> {
        if amount < 0 {
            return Err(Refused);
        }
        for i in 0..count {
            self.enter(amount, format!("INV-{i:08}"));
        }
        Ok(())
    }

    /// Enters `count` entries, then refuses if the book has grown past a cap: it can fail
    /// after recording, so it rolls back (one copy of the state per call).
    pub fn enter_capped(&mut self, count: u64, amount: i64) -> Result<(), Refused> {
        for i in 0..count {
            self.enter(amount, format!("INV-{i:08}"));
        }
        if self.entries.len() > 100_000_000 {
            return Err(Refused);
        }
        Ok(())
    }
}

/// The baseline's event, as a hand-written system keeps it.
#[derive(Debug, Clone)]
struct HandEvent {
    amount: i64,
    reference: String,
}

/// The baseline: the state changed in place and each event kept with its id and time.
struct HandBook {
    entries: Vec<Entry>,
    pending: Vec<(Uuid, Timestamp, u64, HandEvent)>,
    version: u64,
}

impl HandBook {
    fn record(&mut self, event: HandEvent) {
        self.entries.push(Entry {
            amount: event.amount,
            reference: event.reference.clone(),
        });
        self.version += 1;
        self.pending
            .push((Uuid::now_v7(), Timestamp::now(), self.version, event));
    }
}

/// Runs the large-state workloads (memory backend only: no store is involved).
///
/// # Errors
/// None in practice; the signature matches the other workloads.
pub fn run(params: &Params, outcomes: &mut Vec<Outcome>) -> R<()> {
    use crate::{paired, rate};
    // One aggregate per measurement, opened outside the timing; after each batch its events
    // are taken out, as a save does, so only the state grows (from ENTRIES).
    let ours_events = |how: &str| {
        let mut book = Book::open(ENTRIES);
        drop(book.collect_events());
        rate(params.budget, || {
            match how {
                "checked" => book.enter_batch(BATCH, 1).map_err(|_| "refused")?,
                "capped" => book.enter_capped(BATCH, 1).map_err(|_| "refused")?,
                _ => {
                    for i in 0..BATCH {
                        book.enter(1, format!("INV-{i:08}"));
                    }
                }
            }
            black_box(book.collect_events());
            Ok(BATCH)
        })
    };
    let baseline = || {
        let mut book = HandBook {
            entries: Book::open(ENTRIES).into_state().entries,
            pending: Vec::new(),
            version: 1,
        };
        rate(params.budget, || {
            for i in 0..BATCH {
                book.record(HandEvent {
                    amount: 1,
                    reference: format!("INV-{i:08}"),
                });
            }
            black_box(std::mem::take(&mut book.pending));
            Ok(BATCH)
        })
    };
    let workloads = [
        ("record_large", "events", "by event methods (no copy)"),
        (
            "command_large",
            "checked",
            "by a command that checks, then records (no copy)",
        ),
        (
            "rollback_large",
            "capped",
            "by a command that can fail after recording (one copy of the state)",
        ),
    ];
    for (workload, how, note) in workloads {
        if !params.wants(workload) {
            continue;
        }
        let (ours, base) = paired(params.reps, || ours_events(how), baseline)?;
        crate::ours::push(
            outcomes,
            "memory",
            workload,
            ours,
            base,
            "events/s",
            format!("{ENTRIES}+ entries in the state, {BATCH} events a batch {note}"),
        );
    }
    Ok(())
}
