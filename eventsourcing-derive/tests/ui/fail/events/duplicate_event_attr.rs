// Two `#[event]` attributes on one method.
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
    #[event(Brightened)]
    fn set(&mut self, level: u8) {
        self.level = level;
    }
}

fn main() {}
