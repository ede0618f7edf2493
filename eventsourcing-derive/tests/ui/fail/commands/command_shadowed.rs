use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    age: u64,
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name, age: 0 }
    }

    #[event(Aged)]
    fn record(&mut self) {
        self.age += 1;
    }

    pub fn version(&mut self) -> u64 {
        self.age
    }
}

fn main() {}
