// An event enum without variants.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, DomainEvent)]
pub enum BoxEvent {}

fn main() {}
