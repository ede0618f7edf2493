// A `pub(super)` command is callable where `pub(super)` reaches, and no further: the
// generated trait that carries it must not be public.
mod outer {
    pub mod inner {
        use eventsourcing::prelude::*;

        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct Vault {
            pub(crate) open: bool,
        }

        #[entity]
        impl Vault {
            #[event(Built)]
            pub fn build() -> Self {
                Vault { open: false }
            }

            #[event(Opened)]
            pub(super) fn open(&mut self) {
                self.open = true;
            }
        }
    }

    pub fn open_it() -> bool {
        use inner::VaultSuperCommands;
        let mut vault = inner::Vault::build();
        vault.open();
        vault.open
    }
}

use outer::inner::*;

fn main() {
    assert!(outer::open_it());
    let mut vault = Vault::build();
    vault.open();
}
