//! A dog that learns tricks, with one business rule.

use eventsourcing::prelude::*;

/// Why a command on a dog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DogError {
    /// The dog already knows this trick.
    #[error("the dog already knows `{0}`")]
    AlreadyKnown(String),
}

/// A dog's state: a name and the tricks it knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[entity]
impl Dog {
    /// A dog joins the school.
    #[event(Registered)]
    pub fn register(name: String) -> Self {
        Dog {
            name,
            tricks: Vec::new(),
        }
    }

    /// The dog learned a trick.
    #[event(TrickAdded)]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    /// Teaches a trick, refusing one the dog already knows.
    ///
    /// # Errors
    /// [`DogError::AlreadyKnown`]; the aggregate is unchanged then.
    pub fn add_trick_once(&mut self, trick: String) -> Result<(), DogError> {
        if self.knows(&trick) {
            return Err(DogError::AlreadyKnown(trick));
        }
        self.add_trick(trick);
        Ok(())
    }

    /// Whether the dog knows `trick`.
    #[must_use]
    pub fn knows(&self, trick: &str) -> bool {
        self.tricks.iter().any(|t| t == trick)
    }

    /// The dog's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tricks, in the order learned.
    #[must_use]
    pub fn tricks(&self) -> &[String] {
        &self.tricks
    }
}
