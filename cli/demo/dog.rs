//! The dog school's events, as a user's crate would declare them: what the embedding
//! example decodes, and what the tests write.

// Shared by a binary (where nothing is reachable from outside) and the tests.
#![allow(dead_code, unreachable_pub)]

use eventsourcing::prelude::*;

/// A dog at the school.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

/// Version 1 of `Dog.TrickAdded` had no `level`: dogs learnt every trick at level 1.
fn add_level(
    mut value: eventsourcing::serde_json::Value,
) -> Result<eventsourcing::serde_json::Value, String> {
    let object = value.as_object_mut().ok_or("not an object")?;
    object.insert("level".into(), 1.into());
    Ok(value)
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

    /// The dog learns a trick, at a level.
    #[event(TrickAdded, version = 2, upcast(1 => add_level))]
    pub fn add_trick(&mut self, trick: String, level: u32) {
        let _ = level;
        self.tricks.push(trick);
    }
}
