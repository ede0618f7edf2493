// An upcaster from the current version (upcasters go from older versions to the next).
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

fn up(v: eventsourcing::serde_json::Value) -> Result<eventsourcing::serde_json::Value, String> {
    Ok(v)
}

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }

    #[event(Dimmed, version = 2, upcast(1 => up, 2 => up))]
    fn dim(&mut self, level: u8) {
        self.level = level;
    }
}

fn main() {}
