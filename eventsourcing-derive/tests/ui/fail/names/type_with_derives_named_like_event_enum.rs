// A user type named like the generated enum that derives `Debug` and `Clone` itself, as most
// types do. The first error is rustc's "the name `DogEvent` is defined multiple times" at the
// user's type; the rest are generated code that names `DogEvent` and reaches the user's type
// (see docs/MACROS.md, "A name that is already taken", for why they cannot be avoided).
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DogEvent;

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() {
    let _ = DogEvent;
}
