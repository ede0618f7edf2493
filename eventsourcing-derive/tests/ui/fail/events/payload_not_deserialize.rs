// A payload type that is `Serialize` but not `Deserialize`: the first error is at the
// parameter's type.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Colour(u8);

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }

    #[event(Tinted)]
    fn tint(&mut self, colour: Colour) {
        let _ = colour;
    }
}

fn main() {}
