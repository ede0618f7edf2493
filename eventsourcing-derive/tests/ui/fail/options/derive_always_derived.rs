// `derive(..)` lists only extra derives: the event enum always derives `Debug`, `Clone`,
// `Serialize` and `Deserialize`. The fallback keeps the extra derive (`PartialEq`), so the
// comparison in `main` type-checks: one error.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    level: u8,
}

#[entity(derive(PartialEq, Clone))]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { level: 0 }
    }
}

fn main() {
    let lamp = Lamp::install();
    let first = &lamp.pending_events()[0].event;
    assert!(first == first);
}
