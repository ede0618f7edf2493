// The generated names can be chosen when the user's module already has them, and types in
// event fields and command signatures may be written with `self::` and `super::` paths.
use eventsourcing::prelude::*;

pub struct DogEvent;
pub trait DogCommands {}
pub struct DogPrivateCommands;
pub struct DogCrateCommands;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trick(String);

mod kennel {
    use eventsourcing::prelude::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Dog {
        tricks: Vec<super::Trick>,
        age: self::Age,
    }

    #[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
    pub struct Age(pub u32);

    pub struct DogSuperCommands;

    #[entity(
        event_enum = "DogEvents",
        commands = "DogActions",
        private_commands = "DogPrivateActions",
        crate_commands = "DogCrateActions",
        super_commands = "DogSuperActions"
    )]
    impl Dog {
        #[event(Registered)]
        pub fn register(age: self::Age) -> Self {
            Dog { tricks: Vec::new(), age }
        }

        #[event(TrickAdded)]
        fn add_trick(&mut self, trick: super::Trick) {
            self.tricks.push(trick);
        }

        #[event(Aged)]
        pub(crate) fn age(&mut self, by: u32) {
            self.age.0 += by;
        }

        pub(super) fn teach(&mut self, trick: super::Trick) -> Option<self::Age> {
            self.add_trick(trick);
            Some(self.age)
        }

        pub fn tricks(&self) -> &[super::Trick] {
            &self.tricks
        }
    }

    pub(crate) fn _private_use(dog: &mut Aggregate<Dog>) {
        dog.add_trick(super::Trick("sit".to_owned()));
        let _ = DogSuperCommands;
    }
}

use kennel::{Dog, DogActions as _, DogCrateActions as _, DogEvents, DogSuperActions as _};

fn main() {
    let mut dog = Dog::register(kennel::Age(2));
    dog.age(1);
    assert!(dog.teach(Trick("roll".to_owned())).is_some());
    assert_eq!(dog.tricks(), [Trick("roll".to_owned())]);
    let events: Vec<EventEnvelope<DogEvents>> = dog.collect_events();
    assert_eq!(events.len(), 3);
    let _ = (DogEvent, DogPrivateCommands, DogCrateCommands);
    fn _takes<T: DogCommands>() {}
}
