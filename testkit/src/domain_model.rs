//! Hand-written entities and events used by the evolution scenarios, written in the explicit
//! style (`impl DomainEvent` and `impl Entity` by hand), as "new code" that reads data written
//! by older deployments.
//!
//! `Ledger` was called `LegacyAccount` in an older deployment, and its `Withdrawn` event was called
//! `Debited`: the old topics are aliases. `Ledger.Deposited` is at schema version 3:
//!
//! | version | payload |
//! |---|---|
//! | 1 | `{"cents": 150}` |
//! | 2 | `{"cents": 150, "currency": "EUR"}` (currency added, EUR before) |
//! | 3 | `{"amount": 150, "currency": "EUR", "memo": ""}` (cents renamed, memo added) |
//!
//! The snapshot state of `Ledger` is at schema version 3 too:
//!
//! | version | state |
//! |---|---|
//! | 1 | `{"owner": "ann", "total": 100}` |
//! | 2 | `{"owner": "ann", "total": 100, "deposits": 2}` (deposits counted) |
//! | 3 | `{"owner": "ann", "balance": 100, "deposits": 2}` (total renamed) |

use eventsourcing::domain::{
    DomainError, DomainEvent, Entity, SnapshotCodec, TopicRegistration, Upcaster,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `Ledger.Opened`, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// Who owns the ledger.
    pub owner: String,
}

/// `Ledger.Deposited`, version 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposited {
    /// Amount in cents.
    pub amount: u64,
    /// ISO currency code.
    pub currency: String,
    /// Free text.
    pub memo: String,
}

/// `Ledger.Withdrawn` (once `Ledger.Debited`, and before that `LegacyAccount.Debited`), version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    /// Amount in cents.
    pub amount: u64,
}

/// The events of a [`Ledger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEvent {
    /// The ledger was opened.
    Opened(Opened),
    /// Money came in.
    Deposited(Deposited),
    /// Money went out.
    Withdrawn(Withdrawn),
}

fn object(value: Value) -> Result<serde_json::Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected an object, got {other}")),
    }
}

/// Deposited v1 to v2: the currency was always euros.
fn deposited_v1_to_v2(value: Value) -> Result<Value, String> {
    let mut map = object(value)?;
    map.insert("currency".into(), json!("EUR"));
    Ok(Value::Object(map))
}

/// Deposited v2 to v3: `cents` became `amount`, and a memo was added.
fn deposited_v2_to_v3(value: Value) -> Result<Value, String> {
    let mut map = object(value)?;
    let cents = map.remove("cents").ok_or("v2 deposit without `cents`")?;
    map.insert("amount".into(), cents);
    map.insert("memo".into(), json!(""));
    Ok(Value::Object(map))
}

/// The upcasters of `Ledger.Deposited`, declared next to the event.
pub static DEPOSITED_UPCASTERS: [Upcaster; 2] = [
    Upcaster {
        from_version: 1,
        upcast: deposited_v1_to_v2,
    },
    Upcaster {
        from_version: 2,
        upcast: deposited_v2_to_v3,
    },
];

/// What `#[event(...)]` would generate for the ledger's events.
pub static LEDGER_TOPICS: [TopicRegistration; 3] = [
    TopicRegistration {
        topic: "Ledger.Opened",
        entity: "Ledger",
        event: "Opened",
        type_name: "LedgerEvent",
        version: 1,
        aliases: &["LegacyAccount.Opened"],
        upcasters: &[],
        creates: true,
    },
    TopicRegistration {
        topic: "Ledger.Deposited",
        entity: "Ledger",
        event: "Deposited",
        type_name: "LedgerEvent",
        version: 3,
        aliases: &["LegacyAccount.Deposited"],
        upcasters: &DEPOSITED_UPCASTERS,
        creates: false,
    },
    TopicRegistration {
        topic: "Ledger.Withdrawn",
        entity: "Ledger",
        event: "Withdrawn",
        type_name: "LedgerEvent",
        version: 1,
        aliases: &["Ledger.Debited", "LegacyAccount.Debited"],
        upcasters: &[],
        creates: false,
    },
];

fn payload_error(topic: &str, source: serde_json::Error) -> DomainError {
    DomainError::Payload {
        topic: topic.to_owned(),
        source,
    }
}

impl DomainEvent for LedgerEvent {
    fn registrations() -> &'static [TopicRegistration] {
        &LEDGER_TOPICS
    }

    fn registration(&self) -> &'static TopicRegistration {
        match self {
            Self::Opened(_) => &LEDGER_TOPICS[0],
            Self::Deposited(_) => &LEDGER_TOPICS[1],
            Self::Withdrawn(_) => &LEDGER_TOPICS[2],
        }
    }

    fn encode(&self) -> Result<Vec<u8>, DomainError> {
        let result = match self {
            Self::Opened(e) => serde_json::to_vec(e),
            Self::Deposited(e) => serde_json::to_vec(e),
            Self::Withdrawn(e) => serde_json::to_vec(e),
        };
        result.map_err(|source| DomainError::Encode {
            topic: self.topic().to_owned(),
            source,
        })
    }

    fn decode(topic: &str, payload: &[u8]) -> Result<Self, DomainError> {
        let value = serde_json::from_slice(payload).map_err(|e| payload_error(topic, e))?;
        Self::decode_value(topic, value)
    }

    fn decode_value(topic: &str, value: Value) -> Result<Self, DomainError> {
        let registration = Self::resolve(topic)?;
        let fail = |e| payload_error(registration.topic, e);
        Ok(match registration.event {
            "Opened" => Self::Opened(serde_json::from_value(value).map_err(fail)?),
            "Deposited" => Self::Deposited(serde_json::from_value(value).map_err(fail)?),
            _ => Self::Withdrawn(serde_json::from_value(value).map_err(fail)?),
        })
    }
}

/// A ledger: an owner and a balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Who owns it.
    pub owner: String,
    /// Cents.
    pub balance: i64,
    /// How many deposits were made.
    pub deposits: u32,
}

/// Snapshot state v1 to v2: deposits were not counted (0).
fn ledger_state_v1_to_v2(value: Value) -> Result<Value, String> {
    let mut map = object(value)?;
    map.insert("deposits".into(), json!(0));
    Ok(Value::Object(map))
}

/// Snapshot state v2 to v3: `total` became `balance`.
fn ledger_state_v2_to_v3(value: Value) -> Result<Value, String> {
    let mut map = object(value)?;
    let total = map.remove("total").ok_or("v2 state without `total`")?;
    map.insert("balance".into(), total);
    Ok(Value::Object(map))
}

/// The snapshot upcasters of `Ledger`.
pub static LEDGER_STATE_UPCASTERS: [Upcaster; 2] = [
    Upcaster {
        from_version: 1,
        upcast: ledger_state_v1_to_v2,
    },
    Upcaster {
        from_version: 2,
        upcast: ledger_state_v2_to_v3,
    },
];

impl Ledger {
    /// A new ledger.
    #[must_use]
    pub fn opened(owner: &str) -> LedgerEvent {
        LedgerEvent::Opened(Opened {
            owner: owner.into(),
        })
    }

    /// A deposit of `amount` cents.
    #[must_use]
    pub fn deposit(amount: u64) -> LedgerEvent {
        LedgerEvent::Deposited(Deposited {
            amount,
            currency: "EUR".into(),
            memo: String::new(),
        })
    }

    /// A withdrawal of `amount` cents.
    #[must_use]
    pub fn withdraw(amount: u64) -> LedgerEvent {
        LedgerEvent::Withdrawn(Withdrawn { amount })
    }
}

fn signed(amount: u64, topic: &str) -> Result<i64, DomainError> {
    i64::try_from(amount).map_err(|_| DomainError::rejected(topic, "amount too large"))
}

impl Entity for Ledger {
    type Event = LedgerEvent;
    const NAME: &'static str = "Ledger";

    fn mutate(state: Option<Self>, event: LedgerEvent) -> Result<Self, DomainError> {
        let topic = event.topic();
        match (state, event) {
            (None, LedgerEvent::Opened(Opened { owner })) => Ok(Self {
                owner,
                balance: 0,
                deposits: 0,
            }),
            (Some(mut ledger), LedgerEvent::Deposited(d)) => {
                ledger.balance += signed(d.amount, topic)?;
                ledger.deposits += 1;
                Ok(ledger)
            }
            (Some(mut ledger), LedgerEvent::Withdrawn(w)) => {
                ledger.balance -= signed(w.amount, topic)?;
                Ok(ledger)
            }
            (None, _) => Err(DomainError::NotCreated {
                topic: topic.into(),
            }),
            (Some(_), LedgerEvent::Opened(_)) => Err(DomainError::AlreadyCreated {
                topic: topic.into(),
            }),
        }
    }

    fn snapshot_codec() -> Option<SnapshotCodec<Self>> {
        Some(
            SnapshotCodec::json()
                .version(3)
                .upcasters(&LEDGER_STATE_UPCASTERS),
        )
    }
}

/// The events of a [`Tally`]: a second entity type, whose snapshot interval is declared on
/// the entity itself (every 5 events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TallyEvent {
    /// Created.
    Started,
    /// One more.
    Counted,
}

/// The registrations of [`TallyEvent`].
pub static TALLY_TOPICS: [TopicRegistration; 2] = [
    TopicRegistration {
        topic: "Tally.Started",
        entity: "Tally",
        event: "Started",
        type_name: "TallyEvent",
        version: 1,
        aliases: &[],
        upcasters: &[],
        creates: true,
    },
    TopicRegistration {
        topic: "Tally.Counted",
        entity: "Tally",
        event: "Counted",
        type_name: "TallyEvent",
        version: 1,
        aliases: &[],
        upcasters: &[],
        creates: false,
    },
];

impl DomainEvent for TallyEvent {
    fn registrations() -> &'static [TopicRegistration] {
        &TALLY_TOPICS
    }

    fn registration(&self) -> &'static TopicRegistration {
        match self {
            Self::Started => &TALLY_TOPICS[0],
            Self::Counted => &TALLY_TOPICS[1],
        }
    }

    fn encode(&self) -> Result<Vec<u8>, DomainError> {
        Ok(b"{}".to_vec())
    }

    fn decode(topic: &str, _payload: &[u8]) -> Result<Self, DomainError> {
        Self::decode_value(topic, Value::Null)
    }

    fn decode_value(topic: &str, _value: Value) -> Result<Self, DomainError> {
        Ok(match Self::resolve(topic)?.event {
            "Started" => Self::Started,
            _ => Self::Counted,
        })
    }
}

/// A counter whose snapshots are declared every 5 events by the entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many `Counted` events.
    pub count: u64,
}

impl Entity for Tally {
    type Event = TallyEvent;
    const NAME: &'static str = "Tally";

    fn mutate(state: Option<Self>, event: TallyEvent) -> Result<Self, DomainError> {
        match (state, event) {
            (None, TallyEvent::Started) => Ok(Self { count: 0 }),
            (Some(t), TallyEvent::Counted) => Ok(Self { count: t.count + 1 }),
            (None, e) => Err(DomainError::NotCreated {
                topic: e.topic().into(),
            }),
            (Some(_), e) => Err(DomainError::AlreadyCreated {
                topic: e.topic().into(),
            }),
        }
    }

    fn snapshot_codec() -> Option<SnapshotCodec<Self>> {
        Some(SnapshotCodec::json().every(5))
    }
}

/// Registers the model's event types explicitly (the hand-written types are not collected by
/// `inventory`). Harmless to call repeatedly.
pub fn register() {
    eventsourcing::domain::register::<LedgerEvent>();
    eventsourcing::domain::register::<TallyEvent>();
}
