// A type of the user's already named like the generated event enum: one error, saying how
// to rename, instead of "defined multiple times" and conflicting impls.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

/// The user's own type, which happens to be called `DogEvent`.
pub struct DogEvent;

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {
    let _dog = Dog::register("Rex".to_owned());
    let _mine = DogEvent;
}
