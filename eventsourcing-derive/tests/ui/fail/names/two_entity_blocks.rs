// Two `#[entity]` blocks for one type: the first error names the problem (one entity block
// per type), at the second block.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }
}

#[entity]
impl Dog {
    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() {}
