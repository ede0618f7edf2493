// `#[derive(DomainEvent)]` on a generic type.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
pub enum BoxEvent<T> {
    Packed { item: T },
}

fn main() {}
