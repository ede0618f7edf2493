// One attribute error; the rest of the crate, which uses the struct, its `&self` methods, the
// event enum's name and the command trait's name, still type-checks: no cascade of errors.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered, colour = "brown")]
    fn register(name: String) -> Self {
        Dog { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn describe(dog: &Dog, _events: &[DogEvent]) -> String {
    dog.name().to_owned()
}

#[allow(dead_code)]
fn takes_commands(_: &dyn DogCommands) {}

fn main() {
    let _ = describe;
}
