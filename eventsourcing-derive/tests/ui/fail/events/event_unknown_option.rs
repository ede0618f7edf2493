use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered, topc = "Dog.Born")]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {}
