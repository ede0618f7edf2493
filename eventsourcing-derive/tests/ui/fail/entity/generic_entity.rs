use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pet<T> {
    inner: T,
}

#[entity]
impl<T> Pet<T> {
    #[event(Registered)]
    fn register(inner: T) -> Self {
        Pet { inner }
    }
}

fn main() {}
