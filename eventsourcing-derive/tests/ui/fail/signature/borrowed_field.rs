// A borrowed event parameter: events are stored, so their fields are owned.
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

    #[event(Labelled)]
    fn label(&mut self, label: &str) {
        let _ = label;
    }
}

fn main() {}
