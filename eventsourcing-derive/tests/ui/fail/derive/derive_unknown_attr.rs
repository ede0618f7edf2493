use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Counter", topic = "Counter.All")]
pub enum CounterEvent {
    #[domain_event(topik = "Counter.Go")]
    Started,
    Incremented(u32, u32),
}

fn main() {}
