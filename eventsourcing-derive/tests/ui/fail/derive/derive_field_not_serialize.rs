// A variant's field that is not `Serialize`: the error is at the field's type.
use eventsourcing::prelude::*;

#[derive(Debug, Clone)]
pub struct Label;

#[derive(Debug, Clone, DomainEvent)]
pub enum BoxEvent {
    Labelled { label: Label },
}

fn main() {}
