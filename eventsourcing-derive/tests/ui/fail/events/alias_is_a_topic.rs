// An alias equal to another event's topic: stored events would decode as both.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }

    #[event(Dimmed, aliases = ["Lamp.Installed"])]
    fn dim(&mut self, level: u8) {
        self.level = level;
    }
}

fn main() {}
