// A parameter of type `Self` stores the state in the event: with `snapshots = false` the
// state need not be `Serialize`, but such an event still must; the error is at `Self`.
use eventsourcing::prelude::*;

#[derive(Debug, Clone)]
pub struct Lamp {
    level: u8,
}

#[entity(snapshots = false)]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }

    #[event(Copied)]
    fn copy_from(&mut self, other: Self) {
        self.level = other.level;
    }
}

fn main() {}
