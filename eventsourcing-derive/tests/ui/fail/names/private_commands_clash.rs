// A type named like the private command trait (commands without `pub`): one error, naming
// the `private_commands` option.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    tricks: Vec<String>,
}

#[allow(dead_code)]
trait DogPrivateCommands {}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register() -> Self {
        Dog { tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() {}
