//! `pub(crate)` and `pub(super)` commands live in traits of that visibility, callable where
//! the visibility reaches once the trait is imported; `pub` ones stay in `DogCommands`.
mod outer {
    pub mod kennel {
        use eventsourcing::prelude::*;

        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct Dog {
            pub(crate) meals: u32,
        }

        #[entity]
        impl Dog {
            #[event(Registered)]
            pub fn register() -> Self {
                Dog { meals: 0 }
            }

            #[event(Fed)]
            pub(crate) fn feed(&mut self) {
                self.meals += 1;
            }

            #[event(Treated)]
            pub(super) fn treat(&mut self) {
                self.meals += 10;
            }

            pub fn feed_twice(&mut self) {
                self.feed();
                self.feed();
            }
        }
    }

    pub fn treat(dog: &mut eventsourcing::Aggregate<kennel::Dog>) {
        use kennel::DogSuperCommands;
        dog.treat();
    }
}

use outer::kennel::{Dog, DogCommands, DogCrateCommands};

fn main() {
    let mut dog = Dog::register();
    dog.feed();
    dog.feed_twice();
    outer::treat(&mut dog);
    assert_eq!(dog.meals, 13);
    assert_eq!(dog.version(), 5);
}
