// A `where` clause on an event method: the error points at the clause.
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

    #[event(Switched)]
    fn switch(&mut self, on: bool)
    where
        Self: Clone,
    {
        self.on = on;
    }
}

fn main() {
    let mut lamp = Lamp::install();
    lamp.switch(true);
}
