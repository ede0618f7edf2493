// A `where` clause on a generic command is fine, but one on an event method is not: the
// error is at the clause.
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
    fn dim(&mut self, level: u8)
    where
        u8: Copy,
    {
        self.level = level;
    }

    pub fn dim_to<T>(&mut self, level: T)
    where
        T: Into<u8>,
    {
        self.dim(level.into());
    }
}

fn main() {}
