// Two `#[entity]` blocks for one type, each with a creation event: the first error is
// "the name `DogCommands` is defined multiple times" at the second block, pointing at the
// first; the generated impls of the second block then conflict with the first's.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[entity]
impl Dog {
    #[event(Registered)]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event(Renamed)]
    pub fn rename(&mut self, name: String) {
        self.name = name;
    }
}

#[entity]
impl Dog {
    #[event(Adopted)]
    pub fn adopt(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() {}
