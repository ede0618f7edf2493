// An entity name with a `.` (topics are `{name}.{Event}`).
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity(name = "Home.Lamp")]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }
}

fn main() {}
