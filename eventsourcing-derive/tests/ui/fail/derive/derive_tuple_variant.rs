// A tuple variant with two fields has no JSON object form.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, DomainEvent)]
pub enum BoxEvent {
    Moved(i32, i32),
}

fn main() {}
