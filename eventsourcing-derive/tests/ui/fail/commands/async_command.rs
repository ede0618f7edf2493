// An `async` command.
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

    pub async fn dim_later(&mut self, level: u8) {
        self.dim(level);
    }
}

fn main() {}
