// Two variants with one topic.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, DomainEvent)]
pub enum BoxEvent {
    Packed,
    #[domain_event(topic = "Box.Packed")]
    Wrapped,
}

fn main() {}
