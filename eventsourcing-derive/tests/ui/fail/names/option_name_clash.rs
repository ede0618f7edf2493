// The name given in `event_enum = ".."` is taken too: the error points at the option.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

pub enum Kennel {
    Open,
}

#[entity(event_enum = "Kennel")]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {
    let _ = Kennel::Open;
}
