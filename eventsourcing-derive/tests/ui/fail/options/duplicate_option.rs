use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity(name = "Hound", name = "Pooch")]
impl Dog {
    #[event(Registered, version = 1, version = 2)]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {}
