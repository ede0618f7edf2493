// `pub(in path)` on a command: there is no generated trait of that visibility.
mod kennel {
    use eventsourcing::prelude::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Dog {
        fed: u32,
    }

    #[entity]
    impl Dog {
        #[event(Registered)]
        pub fn register() -> Self {
            Dog { fed: 0 }
        }

        #[event(Fed)]
        pub(in crate::kennel) fn feed(&mut self) {
            self.fed += 1;
        }
    }
}

fn main() {
    let _dog = kennel::Dog::register();
}
