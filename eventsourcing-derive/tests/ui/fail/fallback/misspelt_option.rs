// One misspelt option: exactly one error. The fallback keeps the whole generated API (the
// factory returning `Aggregate<Dog>`, the commands on the aggregate, the event enum as the
// `Entity::Event` type, the private and `pub(crate)` command traits), so the code that uses
// the entity type-checks.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[entity(snapshot = false)]
impl Dog {
    #[event(Registered)]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    #[event(Forgotten)]
    fn forget(&mut self) {
        self.tricks.clear();
    }

    pub fn add_checked(&mut self, trick: String) -> Result<usize, String> {
        self.add_trick(trick);
        Ok(self.tricks.len())
    }

    pub(crate) fn reset(&mut self) {
        self.forget();
    }

    pub fn knows(&self, trick: &str) -> bool {
        self.tricks.iter().any(|t| t == trick)
    }
}

fn first_event(dog: &Aggregate<Dog>) -> Option<&DogEvent> {
    dog.pending_events().first().map(|envelope| &envelope.event)
}

fn generic<T: Entity>(aggregate: &Aggregate<T>) -> u64 {
    aggregate.version()
}

fn main() {
    let mut dog: Aggregate<Dog> = Dog::register("Fido".to_owned());
    dog.add_trick("sit".to_owned());
    let count: Result<usize, String> = dog.add_checked("paw".to_owned());
    dog.reset();
    assert!(dog.knows("sit") && count.is_ok());
    let _ = (first_event(&dog), generic(&dog), <Dog as Entity>::NAME);
    fn takes_commands(_: &dyn DogCommands) {}
    takes_commands(&dog);
}
