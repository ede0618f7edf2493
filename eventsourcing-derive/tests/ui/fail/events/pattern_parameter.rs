// A destructuring pattern as an event parameter: the parameters become named fields.
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

    #[event(Moved)]
    fn move_to(&mut self, (x, _y): (u8, u8)) {
        self.level = x;
    }
}

fn main() {}
