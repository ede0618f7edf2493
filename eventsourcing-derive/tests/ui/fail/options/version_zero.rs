use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered, version = 0)]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {}
