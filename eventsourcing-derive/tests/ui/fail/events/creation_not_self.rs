use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> String {
        name
    }
}

fn main() {}
