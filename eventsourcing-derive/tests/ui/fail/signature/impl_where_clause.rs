// A `where` clause on the entity's impl block: the error points at the clause.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    on: bool,
}

#[entity]
impl Lamp
where
    Lamp: Clone,
{
    #[event(Installed)]
    fn install() -> Self {
        Lamp { on: false }
    }
}

fn main() {
    let _lamp = Lamp::install();
}
