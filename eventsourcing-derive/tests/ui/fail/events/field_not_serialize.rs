use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[derive(Debug, Clone)]
pub struct Collar;

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name }
    }

    #[event(CollarFitted)]
    fn fit_collar(&mut self, collar: Collar) {
        let _ = collar;
    }
}

fn main() {}
