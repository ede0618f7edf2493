// `#[cfg]` on an event method: the event would vanish from some builds while its stored
// events stay in the store; one error at the attribute.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    on: bool,
}

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp { on: false }
    }

    #[cfg(any())]
    #[event(Switched)]
    fn switch(&mut self, on: bool) {
        self.on = on;
    }
}

fn main() {
    let _lamp = Lamp::install();
}
