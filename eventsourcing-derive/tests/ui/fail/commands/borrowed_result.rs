// A command returning a borrow inside a `Result` cannot be rolled back on `Err`.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name }
    }

    #[event(Renamed)]
    fn rename(&mut self, name: String) {
        self.name = name;
    }

    pub fn rename_checked(&mut self, name: String) -> Result<&str, String> {
        if name.is_empty() {
            return Err("empty".to_owned());
        }
        self.rename(name);
        Ok(&self.name)
    }
}

fn main() {}
