// A creation event returning `Option<Self>`: a creation that may refuse returns `Result`.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install(level: u8) -> Option<Self> {
        (level <= 10).then_some(Lamp { level })
    }
}

fn main() {}
