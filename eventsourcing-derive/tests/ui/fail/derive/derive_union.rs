use eventsourcing::prelude::*;

#[derive(Clone, Copy, DomainEvent)]
pub union Bits {
    int: u32,
    float: f32,
}

fn main() {}
