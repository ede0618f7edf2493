use eventsourcing::prelude::*;

#[derive(Debug, Clone)]
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

fn main() {}
