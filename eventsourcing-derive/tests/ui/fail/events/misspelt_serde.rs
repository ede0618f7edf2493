// A misspelt `#[serde(..)]` option on an event parameter.
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

    #[event(Dimmed)]
    fn dim(&mut self, #[serde(defualt)] level: u8) {
        self.level = level;
    }
}

fn main() {
    let mut lamp = Lamp::install();
    lamp.dim(2);
}
