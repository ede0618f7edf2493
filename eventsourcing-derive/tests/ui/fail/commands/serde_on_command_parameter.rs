// `#[serde]` on a command's parameter (commands are not stored).
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
    fn dim(&mut self, level: u8) {
        self.level = level;
    }

    pub fn dim_to(&mut self, #[serde(default)] level: u8) {
        self.dim(level);
    }
}

fn main() {}
