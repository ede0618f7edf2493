// An import named like the generated enum hides it too: one error.
use eventsourcing::prelude::*;

mod other {
    pub struct DogEvent;
}

use other::DogEvent;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {
    let _ = DogEvent;
}
