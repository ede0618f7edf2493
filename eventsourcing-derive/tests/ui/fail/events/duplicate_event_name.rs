use eventsourcing::prelude::*;

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

    #[event(Registered, topic = "Dog.Registered2")]
    fn register_again(name: String) -> Self {
        Dog { name }
    }
}

fn main() {}
