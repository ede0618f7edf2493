use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event]
    fn register(name: String) -> Self {
        Dog { name }
    }

    #[event(topic = "Dog.Renamed")]
    fn rename(&mut self, name: String) {
        self.name = name;
    }
}

fn main() {}
