// An entity without a creation event.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity]
impl Lamp {
    #[event(Dimmed)]
    fn dim(&mut self, level: u8) {
        self.level = level;
    }
}

fn main() {}
