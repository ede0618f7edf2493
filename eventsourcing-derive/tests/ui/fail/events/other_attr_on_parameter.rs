// An attribute other than `#[serde]` or a doc comment on an event parameter.
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
    fn dim(&mut self, #[allow(unused)] level: u8) {
        self.level = level;
    }
}

fn main() {}
