//! The benchmark's entity: a ledger whose postings carry about 200 bytes of JSON each, like a
//! realistic domain event.

use eventsourcing::prelude::*;

/// A ledger: how many postings and their total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    name: String,
    entries: u64,
    total: i64,
}

#[entity]
impl Ledger {
    /// A ledger was opened.
    #[event(Opened)]
    pub fn open(name: String, currency: String, description: String) -> Self {
        let _ = (currency, description);
        Ledger {
            name,
            entries: 0,
            total: 0,
        }
    }

    /// An amount was posted.
    #[event(Posted)]
    pub fn post(&mut self, amount: i64, currency: String, reference: String, memo: String) {
        let _ = (currency, reference, memo);
        self.entries += 1;
        self.total += amount;
    }

    /// Postings so far.
    #[must_use]
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Their total.
    #[must_use]
    pub fn total(&self) -> i64 {
        self.total
    }
}

/// Posts the `i`-th standard posting (about 200 bytes of JSON).
pub fn post(ledger: &mut Aggregate<Ledger>, i: u64) {
    ledger.post(
        i64::try_from(i % 10_000).unwrap_or(0) + 1,
        "EUR".into(),
        format!("INV-2026-11-{i:08}"),
        "Consulting services rendered in November; payable within thirty days of receipt, net."
            .into(),
    );
}

/// Opens a standard ledger.
#[must_use]
pub fn open(i: u64) -> Aggregate<Ledger> {
    Ledger::open(
        format!("ledger {i}"),
        "EUR".into(),
        "Operating account for the benchmark, with a description long enough to be realistic."
            .into(),
    )
}

/// The payload of `Ledger.Posted` as a raw baseline decodes it: plain serde, no framework.
#[derive(Debug, serde::Deserialize)]
pub struct RawPosted {
    /// The amount.
    pub amount: i64,
    /// The currency.
    #[allow(dead_code)]
    pub currency: String,
    /// The reference.
    #[allow(dead_code)]
    pub reference: String,
    /// The memo.
    #[allow(dead_code)]
    pub memo: String,
}
