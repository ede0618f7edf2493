// A trait of the user's already named like the generated command trait: one error.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    tricks: Vec<String>,
}

pub trait DogCommands {
    fn bark(&self);
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register() -> Self {
        Dog { tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() {}
