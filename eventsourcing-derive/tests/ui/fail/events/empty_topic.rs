// An empty topic.
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

    #[event(Dimmed, topic = " ")]
    fn dim(&mut self, level: u8) {
        self.level = level;
    }
}

fn main() {}
