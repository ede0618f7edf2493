// An option written without its value.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity(event_enum)]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }
}

fn main() {}
