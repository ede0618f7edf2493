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

    #[event(Renamed)]
    fn rename(mut self, name: String) {
        self.name = name;
    }
}

fn main() {}
