//! The Dog from the design document, with a command that is rolled back on `Err`.
use eventsourcing::prelude::*;

/// A dog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

/// Why a command failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DogError {
    /// Known already.
    AlreadyKnown(String),
}

#[entity]
impl Dog {
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event(TrickAdded)]
    fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    /// Adds a trick once.
    pub fn add_trick_once(&mut self, trick: String) -> Result<(), DogError> {
        if self.knows(&trick) {
            return Err(DogError::AlreadyKnown(trick));
        }
        self.add_trick(trick);
        Ok(())
    }

    /// Whether the dog knows the trick.
    pub fn knows(&self, trick: &str) -> bool {
        self.tricks.iter().any(|t| t == trick)
    }
}

fn main() {
    let mut dog: Aggregate<Dog> = Dog::register("Fido".into());
    dog.add_trick("roll over".into());
    assert!(dog.knows("roll over"));
    assert_eq!(dog.add_trick_once("roll over".into()), Err(DogError::AlreadyKnown("roll over".into())));
    assert_eq!(dog.version(), 2);
    assert_eq!(dog.name, "Fido");
    assert_eq!(DogEvent::topics(), ["Dog.Registered", "Dog.TrickAdded"]);
}
