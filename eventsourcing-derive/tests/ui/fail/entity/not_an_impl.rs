use eventsourcing::prelude::*;

#[entity]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

fn main() {}
