// A per-event option on the enum instead of a variant.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, DomainEvent)]
#[domain_event(version = 2)]
pub enum BoxEvent {
    Packed,
}

fn main() {}
