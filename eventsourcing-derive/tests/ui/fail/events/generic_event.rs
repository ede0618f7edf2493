// A generic event method: its parameters are stored fields, of concrete types.
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

    #[event(Set)]
    fn set<T: Into<u8>>(&mut self, level: T) {
        self.level = level.into();
    }
}

fn main() {}
