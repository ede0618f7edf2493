use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Default for Dog {
    fn default() -> Self {
        Dog { name: String::new() }
    }
}

fn main() {}
