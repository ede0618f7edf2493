//! The explicit style: an event enum and a hand-written mutator (the doc test of `Entity`).
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Counter")]
enum CounterEvent {
    Started,
    Incremented { by: u32 },
    #[domain_event(topic = "Counter.Reset", version = 2, upcast(1 => up))]
    Reset(u32),
}

fn up(v: eventsourcing::__private::serde_json::Value) -> Result<eventsourcing::__private::serde_json::Value, String> {
    Ok(v)
}

#[derive(Debug, Clone)]
struct Counter {
    total: u32,
}

impl Entity for Counter {
    type Event = CounterEvent;
    const NAME: &'static str = "Counter";

    fn mutate(state: Option<Self>, event: CounterEvent) -> Result<Self, DomainError> {
        match (state, event) {
            (None, CounterEvent::Started) => Ok(Counter { total: 0 }),
            (Some(c), CounterEvent::Incremented { by }) => Ok(Counter { total: c.total + by }),
            (Some(_), CounterEvent::Reset(to)) => Ok(Counter { total: to }),
            (None, e) => Err(DomainError::NotCreated { topic: e.topic().into() }),
            (Some(_), e) => Err(DomainError::AlreadyCreated { topic: e.topic().into() }),
        }
    }
}

fn main() {
    let mut counter = Aggregate::<Counter>::create(CounterEvent::Started).unwrap();
    counter.record(CounterEvent::Incremented { by: 2 }).unwrap();
    assert_eq!(counter.total, 2);
    assert_eq!(CounterEvent::Started.topic(), "Counter.Started");
    counter.record(CounterEvent::Reset(9)).unwrap();
    assert_eq!(counter.total, 9);
}
