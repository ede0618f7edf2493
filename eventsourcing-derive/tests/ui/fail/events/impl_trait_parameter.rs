// `impl Trait` as an event parameter: a stored field needs a concrete type.
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

    #[event(Renamed)]
    fn rename(&mut self, name: impl Into<String>) {
        let _ = name.into();
    }
}

fn main() {}
