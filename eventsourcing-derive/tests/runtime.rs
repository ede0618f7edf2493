//! The generated code against the real runtime: factories, commands, rollback, topics, codecs,
//! mutator errors and the topic registry. Warnings are errors here: generated code must not
//! warn in user crates (this crate also gets the workspace lints: missing docs, unreachable pub).
#![deny(warnings)]

use eventsourcing::domain::{resolve_topic, DomainError};
use eventsourcing::prelude::*;
// Upcasters take `serde_json::Value`; the runtime has no public re-export of serde_json yet.
use eventsourcing::__private::serde_json;

/// A dog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

/// Why a dog command failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DogError {
    /// The dog knows the trick already.
    AlreadyKnown(String),
}

#[entity]
impl Dog {
    /// Registers a dog.
    #[event(Registered)]
    fn register(name: String) -> Self {
        Dog {
            name,
            tricks: Vec::new(),
        }
    }

    #[event(TrickAdded)]
    fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    #[event(Renamed, topic = "Dog.NameChanged", version = 2, aliases = ["Dog.Renamed"], upcast(1 => upcast_renamed))]
    fn rename(&mut self, #[serde(default)] name: String) {
        self.name = name;
    }

    #[event(Forgotten)]
    fn forget_all(&mut self) {
        self.tricks.clear();
    }

    /// Adds a trick unless the dog knows it.
    pub fn add_trick_once(&mut self, trick: String) -> Result<(), DogError> {
        if self.knows(&trick) {
            return Err(DogError::AlreadyKnown(trick));
        }
        self.add_trick(trick);
        Ok(())
    }

    /// Adds both tricks or none.
    pub fn add_two(&mut self, first: String, second: String) -> Result<usize, DogError> {
        self.add_trick_once(first)?;
        self.add_trick_once(second)?;
        Ok(self.tricks.len())
    }

    /// Whether the dog knows `trick`.
    pub fn knows(&self, trick: &str) -> bool {
        self.tricks.iter().any(|t| t == trick)
    }
}

fn upcast_renamed(mut value: serde_json::Value) -> Result<serde_json::Value, String> {
    if let Some(object) = value.as_object_mut() {
        if let Some(old) = object.remove("new_name") {
            object.insert("name".into(), old);
        }
    }
    Ok(value)
}

#[test]
fn factory_and_commands_record_events() {
    let mut dog = Dog::register("Fido".into());
    assert_eq!(dog.version(), 1);
    dog.add_trick("roll over".into());
    assert!(dog.knows("roll over"));
    assert_eq!(dog.add_trick_once("sit".into()), Ok(()));
    assert_eq!(dog.version(), 3);
    dog.rename("Rex".into());
    assert_eq!(dog.name, "Rex");
    let topics: Vec<&str> = dog.pending_events().iter().map(|e| e.topic()).collect();
    assert_eq!(
        topics,
        [
            "Dog.Registered",
            "Dog.TrickAdded",
            "Dog.TrickAdded",
            "Dog.NameChanged"
        ]
    );
}

#[test]
fn a_failing_command_leaves_the_aggregate_unchanged() {
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    assert_eq!(
        dog.add_trick_once("sit".into()),
        Err(DogError::AlreadyKnown("sit".into()))
    );
    assert_eq!(dog.version(), 2);
    // The first trick is recorded, then the second fails: both are rolled back.
    assert_eq!(
        dog.add_two("paw".into(), "sit".into()),
        Err(DogError::AlreadyKnown("sit".into()))
    );
    assert_eq!(dog.version(), 2);
    assert_eq!(dog.pending_events().len(), 2);
    assert!(!dog.knows("paw"));
    assert_eq!(dog.add_two("paw".into(), "beg".into()), Ok(3));
    assert_eq!(dog.version(), 4);
}

#[test]
fn atomically_rolls_back_every_command_of_the_closure() {
    let mut dog = Dog::register("Fido".into());
    let failed = dog.atomically(|dog| {
        dog.add_trick("sit".into());
        dog.add_trick_once("paw".into())?;
        dog.add_trick_once("sit".into())
    });
    assert_eq!(failed, Err(DogError::AlreadyKnown("sit".into())));
    assert_eq!((dog.version(), dog.pending_events().len()), (1, 1));
    assert!(!dog.knows("sit") && !dog.knows("paw"));
    let done: Result<(), DogError> = dog.atomically(|dog| {
        dog.add_trick_once("sit".into())?;
        dog.add_trick_once("paw".into())
    });
    assert_eq!(done, Ok(()));
    assert_eq!(dog.version(), 3);
}

#[test]
fn events_encode_only_their_fields_and_decode_back() {
    let event = DogEvent::TrickAdded {
        trick: "sit".into(),
    };
    assert_eq!(event.topic(), "Dog.TrickAdded");
    assert_eq!(event.schema_version(), 1);
    let bytes = event.encode().expect("encode");
    assert_eq!(bytes, br#"{"trick":"sit"}"#);
    let back = DogEvent::decode("Dog.TrickAdded", &bytes).expect("decode");
    assert!(matches!(back, DogEvent::TrickAdded { trick } if trick == "sit"));

    assert_eq!(DogEvent::Forgotten.encode().expect("encode"), b"{}");
    assert!(matches!(
        DogEvent::decode("Dog.Forgotten", b"{}"),
        Ok(DogEvent::Forgotten)
    ));
    // #[serde(default)] passes through to the payload.
    assert!(matches!(
        DogEvent::decode("Dog.NameChanged", b"{}"),
        Ok(DogEvent::Renamed { name }) if name.is_empty()
    ));
}

#[test]
fn decode_errors_are_typed() {
    match DogEvent::decode("Dog.Nope", b"{}") {
        Err(DomainError::UnknownTopic { topic, known }) => {
            assert_eq!(topic, "Dog.Nope");
            assert_eq!(
                known,
                [
                    "Dog.Forgotten",
                    "Dog.NameChanged",
                    "Dog.Registered",
                    "Dog.TrickAdded"
                ]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        DogEvent::decode("Dog.TrickAdded", b"{\"trick\": 3}"),
        Err(DomainError::Payload { .. })
    ));
}

#[test]
fn aliases_and_upcasters_are_registered() {
    let registration = DogEvent::resolve("Dog.Renamed").expect("alias");
    assert_eq!(registration.topic, "Dog.NameChanged");
    assert_eq!(registration.version, 2);
    let old = br#"{"new_name":"Rex"}"#;
    let event = DogEvent::decode_stored("Dog.Renamed", 1, old).expect("upcast");
    assert!(matches!(event, DogEvent::Renamed { name } if name == "Rex"));
    assert!(DogEvent::registrations()[0].creates);
    assert!(!DogEvent::registrations()[1].creates);
}

#[test]
fn mutate_rejects_the_wrong_state() {
    let created = Dog::mutate(
        Some(Dog::register("A".into()).into_state()),
        DogEvent::Registered { name: "B".into() },
    );
    assert!(
        matches!(created, Err(DomainError::AlreadyCreated { topic }) if topic == "Dog.Registered")
    );
    let not_created = Dog::mutate(None, DogEvent::Forgotten);
    assert!(
        matches!(not_created, Err(DomainError::NotCreated { topic }) if topic == "Dog.Forgotten")
    );
    assert_eq!(Dog::NAME, "Dog");
}

#[test]
fn snapshots_are_json() {
    let codec = Dog::snapshot_codec().expect("snapshots on by default");
    assert_eq!(codec.version, 1);
    let dog = Dog::register("Fido".into());
    let bytes = codec.encode(Dog::NAME, &dog).expect("encode");
    let back = codec.decode(Dog::NAME, 1, &bytes).expect("decode");
    assert_eq!(back.name, "Fido");
}

#[test]
fn the_registry_resolves_generated_topics() {
    assert_eq!(
        resolve_topic("Dog.TrickAdded")
            .expect("registered")
            .type_name,
        concat!(module_path!(), "::DogEvent")
    );
    assert_eq!(
        resolve_topic("Dog.Renamed").expect("alias").topic,
        "Dog.NameChanged"
    );
    assert_eq!(
        resolve_topic("Counter.Incremented")
            .expect("derived")
            .entity,
        "Counter"
    );
}

/// Hand-written events in the seed's explicit style.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Counter")]
pub enum CounterEvent {
    /// Started.
    #[domain_event(creates)]
    Started,
    /// Incremented.
    Incremented {
        /// By how much.
        by: u32,
    },
    /// Reset to a value.
    Reset(u32),
}

#[test]
fn derived_enum_payloads() {
    assert_eq!(CounterEvent::Started.encode().expect("encode"), b"{}");
    assert_eq!(
        CounterEvent::Incremented { by: 2 }
            .encode()
            .expect("encode"),
        br#"{"by":2}"#
    );
    assert_eq!(CounterEvent::Reset(7).encode().expect("encode"), b"7");
    assert!(matches!(
        CounterEvent::decode("Counter.Reset", b"7"),
        Ok(CounterEvent::Reset(7))
    ));
    // An upcast payload arrives as a `Value` (decoded through bytes by the provided method).
    assert!(matches!(
        CounterEvent::decode_value("Counter.Reset", serde_json::json!(8)),
        Ok(CounterEvent::Reset(8))
    ));
    assert!(matches!(
        CounterEvent::decode_value("Counter.Incremented", serde_json::json!({ "by": 3 })),
        Ok(CounterEvent::Incremented { by: 3 })
    ));
    assert!(matches!(
        CounterEvent::decode_value("Counter.Started", serde_json::json!({})),
        Ok(CounterEvent::Started)
    ));
    assert!(matches!(
        CounterEvent::decode_value("Counter.Reset", serde_json::json!("x")),
        Err(DomainError::Payload { .. })
    ));
    assert_eq!(
        CounterEvent::topics(),
        ["Counter.Started", "Counter.Incremented", "Counter.Reset"]
    );
}

/// A private entity with private field and error types: the generated `pub` enum and trait
/// must not warn about them.
mod private {
    use eventsourcing::prelude::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Toy;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Cat {
        lives: u8,
        toy: Toy,
    }

    #[derive(Debug)]
    enum CatError {
        Gone,
    }

    #[entity(snapshots = false)]
    impl Cat {
        #[event(Born)]
        fn born(toy: Toy) -> Self {
            Cat { lives: 9, toy }
        }

        #[event(LifeLost)]
        fn lose_life(&mut self) {
            self.lives -= 1;
        }

        fn risk(&mut self) -> Result<u8, CatError> {
            if self.lives == 0 {
                return Err(CatError::Gone);
            }
            self.lose_life();
            Ok(self.lives)
        }
    }

    #[test]
    fn private_entities_work_without_warnings() {
        let mut cat = Cat::born(Toy);
        for _ in 0..9 {
            cat.risk().expect("a life left");
        }
        assert!(matches!(cat.risk(), Err(CatError::Gone)));
        assert_eq!(cat.version(), 10);
        let _ = &cat.toy;
        assert!(Cat::snapshot_codec().is_none());
    }
}

/// Rollback is decided by the return type, not by how it is spelled: an alias of `Result`, a
/// full path and a re-export under another name all roll back on `Err`.
pub mod rollback_by_type {
    use eventsourcing::prelude::*;

    /// Why a counter command failed.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Full;

    /// An alias of `Result`, as crates commonly write.
    pub type CounterResult<T> = Result<T, Full>;

    /// `Result` under another name.
    pub mod reexport {
        pub use std::result::Result as Outcome;
    }

    /// A counter that holds at most three.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Counter {
        count: u8,
    }

    // Topics of their own: the binary has another `Counter` entity, and the registry
    // refuses two types claiming one topic (which `Application::in_memory` checks).
    #[entity]
    impl Counter {
        #[event(Started, topic = "BoundedCounter.Started")]
        fn start() -> Self {
            Counter { count: 0 }
        }

        #[event(Incremented, topic = "BoundedCounter.Incremented")]
        fn increment(&mut self) {
            self.count += 1;
        }

        /// Increments twice through an alias of `Result`.
        pub fn twice_alias(&mut self) -> CounterResult<u8> {
            self.increment();
            if self.count > 3 {
                return Err(Full);
            }
            self.increment();
            if self.count > 3 {
                return Err(Full);
            }
            Ok(self.count)
        }

        /// Increments twice through `std::result::Result` written in full.
        pub fn twice_path(&mut self) -> std::result::Result<u8, Full> {
            self.increment();
            self.increment();
            if self.count > 3 {
                Err(Full)
            } else {
                Ok(self.count)
            }
        }

        /// Increments twice through a re-export of `Result` under another name.
        pub fn twice_reexport(&mut self) -> reexport::Outcome<u8, Full> {
            self.increment();
            self.increment();
            if self.count > 3 {
                Err(Full)
            } else {
                Ok(self.count)
            }
        }

        /// Fails with a `&'static str`: a `'static` borrow does not stop the rollback.
        pub fn twice_static_error(&mut self) -> Result<u8, &'static str> {
            self.increment();
            self.increment();
            if self.count > 3 {
                Err("full")
            } else {
                Ok(self.count)
            }
        }

        /// Not a `Result`: never rolled back.
        pub fn once(&mut self) -> u8 {
            self.increment();
            self.count
        }
    }

    #[test]
    fn aliases_paths_and_reexports_of_result_roll_back() {
        let mut counter = Counter::start();
        assert_eq!(counter.twice_alias(), Ok(2));
        assert_eq!(counter.version(), 3);
        assert_eq!(counter.twice_alias(), Err(Full));
        assert_eq!((counter.version(), counter.count), (3, 2));
        assert_eq!(counter.twice_path(), Err(Full));
        assert_eq!((counter.version(), counter.count), (3, 2));
        assert_eq!(counter.twice_reexport(), Err(Full));
        assert_eq!((counter.version(), counter.count), (3, 2));
        assert_eq!(counter.twice_static_error(), Err("full"));
        assert_eq!((counter.version(), counter.count), (3, 2));
        assert_eq!(counter.once(), 3);
        assert_eq!(counter.pending_events().len(), 4);
    }
}

/// `derive(..)` adds derives to the event enum; doc comments on event parameters document its
/// fields (this crate denies missing docs).
pub mod derives_and_field_docs {
    use eventsourcing::prelude::*;

    /// A lamp.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Lamp {
        level: u8,
    }

    // Topics of their own: the binary has another `Lamp` entity, and the registry refuses
    // two types claiming one topic (which `Application::in_memory` checks).
    #[entity(derive(PartialEq, Eq, Hash))]
    impl Lamp {
        #[event(Installed, topic = "DimmableLamp.Installed")]
        fn install() -> Self {
            Lamp { level: 0 }
        }

        #[event(Dimmed, topic = "DimmableLamp.Dimmed")]
        fn dim(
            &mut self,
            /// The new brightness, 0 to 10.
            level: u8,
        ) {
            self.level = level;
        }
    }

    #[test]
    fn the_event_enum_gets_the_extra_derives() {
        let mut lamp = Lamp::install();
        lamp.dim(3);
        let events: Vec<&LampEvent> = lamp.pending_events().iter().map(|e| &e.event).collect();
        assert_eq!(
            events,
            [&LampEvent::Installed, &LampEvent::Dimmed { level: 3 }]
        );
        let set: std::collections::HashSet<LampEvent> = events.into_iter().cloned().collect();
        assert!(set.contains(&LampEvent::Dimmed { level: 3 }));
    }
}

/// A creation event returning `Result<Self, E>`: the factory returns
/// `Result<Aggregate<T>, E>` and records nothing when the body refuses.
pub mod fallible_creation {
    use eventsourcing::domain::DomainError;
    use eventsourcing::prelude::*;

    /// Why an account cannot be opened.
    #[derive(Debug, PartialEq, Eq)]
    pub enum OpenError {
        /// The owner's name is empty.
        NoOwner,
    }

    /// An alias, as crates write them.
    pub type OpenResult<T> = Result<T, OpenError>;

    /// An account.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Account {
        owner: String,
        limit: u32,
    }

    #[entity]
    impl Account {
        /// Opens an account for a named owner.
        #[event(Opened)]
        pub fn open(owner: String, limit: u32) -> Result<Self, OpenError> {
            if owner.is_empty() {
                return Err(OpenError::NoOwner);
            }
            Ok(Account { owner, limit })
        }

        /// Opens an account through an alias of `Result`.
        #[event(Imported)]
        pub fn import(owner: String) -> OpenResult<Self> {
            if owner.is_empty() {
                Err(OpenError::NoOwner)
            } else {
                Ok(Account { owner, limit: 0 })
            }
        }
    }

    #[test]
    fn the_factory_returns_the_body_s_error() {
        let account: Aggregate<Account> = Account::open("Ada".into(), 10).expect("opens");
        assert_eq!((account.owner.as_str(), account.limit), ("Ada", 10));
        assert_eq!(account.pending_events().len(), 1);
        assert!(matches!(
            Account::open(String::new(), 1),
            Err(OpenError::NoOwner)
        ));
        assert!(matches!(
            Account::import(String::new()),
            Err(OpenError::NoOwner)
        ));
        assert_eq!(Account::import("Bo".into()).expect("imports").version(), 1);
    }

    #[test]
    fn a_stored_creation_event_the_body_refuses_is_a_typed_error() {
        let event = AccountEvent::Opened {
            owner: String::new(),
            limit: 0,
        };
        let error = Account::mutate(None, event).expect_err("refused");
        assert!(
            matches!(&error, DomainError::Rejected { topic, reason } if topic == "Account.Opened" && reason == "NoOwner"),
            "{error:?}"
        );
    }
}

/// Recording costs the size of the event, not of the state: no copy of the state per event,
/// one copy per fallible command that records something (for its rollback), none for one
/// that refuses first; and a mutator's panic is rolled back inside a fallible command and
/// poisons the aggregate outside one.
pub mod state_copies {
    use std::cell::Cell;

    use eventsourcing::domain::DomainError;
    use eventsourcing::prelude::*;

    thread_local! {
        static COPIES: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts how many times the state is cloned (per thread: tests run in parallel).
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct CopyCounter;

    impl Clone for CopyCounter {
        fn clone(&self) -> Self {
            COPIES.with(|c| c.set(c.get() + 1));
            CopyCounter
        }
    }

    fn copies() -> usize {
        COPIES.with(Cell::get)
    }

    /// A ledger with a large state.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Ledger {
        entries: Vec<u64>,
        counter: CopyCounter,
    }

    /// A refused ledger command.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Refused;

    #[entity]
    impl Ledger {
        #[event(Opened)]
        fn open(size: u64) -> Self {
            Ledger {
                entries: (0..size).collect(),
                counter: CopyCounter,
            }
        }

        #[event(Entered)]
        fn enter(&mut self, amount: u64) {
            self.entries.push(amount);
        }

        /// Changes the state, then panics when `explode`.
        #[event(Tripped)]
        fn trip(&mut self, explode: bool) {
            self.entries.push(0);
            assert!(!explode, "the mutator trips");
        }

        /// Enters `count` amounts, then refuses when `refuse`.
        pub fn enter_many(&mut self, count: u64, refuse: bool) -> Result<(), Refused> {
            for amount in 0..count {
                self.enter(amount);
            }
            if refuse {
                return Err(Refused);
            }
            Ok(())
        }

        /// Refuses before recording anything.
        pub fn refuse_at_once(&mut self) -> Result<(), Refused> {
            Err(Refused)
        }

        /// Two fallible commands, then refuses when `refuse`.
        pub fn nested(&mut self, refuse: bool) -> Result<(), Refused> {
            self.enter_many(2, false)?;
            self.enter_many(2, false)?;
            if refuse {
                return Err(Refused);
            }
            Ok(())
        }

        /// Records an event, then one whose mutator panics when `explode`, then checks a
        /// rule (so it can fail after recording: it has a rollback point).
        pub fn enter_then_trip(&mut self, explode: bool) -> Result<(), Refused> {
            self.enter(7);
            self.trip(explode);
            if self.size() > 1_000 {
                return Err(Refused);
            }
            Ok(())
        }

        /// Checks, then records: it cannot fail after recording, so it needs no rollback.
        pub fn checked_enter(&mut self, amount: u64) -> Result<(), Refused> {
            if amount == 0 || self.is_full() {
                return Err(Refused);
            }
            let Some(amount) = amount.checked_mul(2) else {
                return Err(Refused);
            };
            self.enter(amount);
            self.enter(amount);
            Ok(())
        }

        /// Checks, records, then trips: no rollback point, so a panic poisons.
        pub fn checked_trip(&mut self) -> Result<(), Refused> {
            if self.is_full() {
                return Err(Refused);
            }
            self.trip(true);
            Ok(())
        }

        /// Whether the ledger is full.
        pub fn is_full(&self) -> bool {
            self.entries.len() >= 1_000_000
        }

        /// How many entries the ledger holds.
        pub fn size(&self) -> usize {
            self.entries.len()
        }
    }

    #[test]
    fn recording_an_event_copies_no_state() {
        let mut ledger = Ledger::open(10_000);
        let before = copies();
        for amount in 0..100 {
            ledger.enter(amount);
        }
        ledger.enter_many(100, false).expect("entered");
        assert_eq!(
            copies() - before,
            1,
            "one copy for the fallible command only"
        );
        assert_eq!((ledger.size(), ledger.version()), (10_200, 201));
    }

    #[test]
    fn a_command_that_refuses_before_recording_copies_nothing() {
        let mut ledger = Ledger::open(10);
        let before = copies();
        assert_eq!(ledger.refuse_at_once(), Err(Refused));
        assert_eq!(ledger.enter_many(0, true), Err(Refused));
        assert_eq!(copies() - before, 0);
    }

    #[test]
    fn a_command_that_checks_then_records_copies_nothing() {
        let mut ledger = Ledger::open(10);
        let before = copies();
        for amount in 1..=50 {
            ledger.checked_enter(amount).expect("entered");
        }
        assert_eq!(ledger.checked_enter(0), Err(Refused));
        assert_eq!(copies() - before, 0, "no failure can follow its events");
        assert_eq!((ledger.size(), ledger.version()), (110, 101));
        // Without a rollback point, a panic of its mutator poisons the aggregate.
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ledger.checked_trip()));
        assert!(panicked.is_err());
        assert!(ledger.check_not_poisoned().is_err());
    }

    #[test]
    fn nested_commands_copy_once_and_roll_back_whole() {
        let mut ledger = Ledger::open(10);
        let before = copies();
        assert_eq!(ledger.nested(true), Err(Refused));
        assert_eq!(
            copies() - before,
            1,
            "the inner commands share the outer copy"
        );
        assert_eq!((ledger.size(), ledger.version()), (10, 1));
        assert_eq!(ledger.pending_events().len(), 1);
        ledger.nested(false).expect("entered");
        assert_eq!((ledger.size(), ledger.version()), (14, 5));
        let atomically = ledger.atomically(|ledger| {
            ledger.enter_many(3, false)?;
            ledger.enter_many(3, true)
        });
        assert_eq!(atomically, Err(Refused));
        assert_eq!((ledger.size(), ledger.version()), (14, 5));
        // One copy for the closure, one more to roll back its inner command that failed
        // (the outer copy with the first command's events applied again).
        assert_eq!(copies() - before, 4);
        // An inner command that fails is rolled back alone when the outer one goes on.
        let recovered: Result<(), Refused> = ledger.atomically(|ledger| {
            ledger.enter_many(3, false)?;
            assert_eq!(ledger.enter_many(5, true), Err(Refused));
            ledger.enter_many(1, false)
        });
        assert_eq!(recovered, Ok(()));
        assert_eq!((ledger.size(), ledger.version()), (18, 9));
        assert_eq!(&ledger.entries[14..], [0, 1, 2, 0]);
    }

    #[test]
    fn a_mutator_panic_in_a_fallible_command_rolls_it_back() {
        let mut ledger = Ledger::open(10);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ledger.enter_then_trip(true)
        }));
        assert!(panicked.is_err());
        assert_eq!((ledger.size(), ledger.version()), (10, 1));
        assert!(ledger.check_not_poisoned().is_ok());
        ledger.enter_then_trip(false).expect("entered");
        assert_eq!((ledger.size(), ledger.version()), (12, 3));
    }

    #[test]
    fn a_mutator_panic_outside_a_command_poisons_the_aggregate() {
        let mut ledger = Ledger::open(10);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ledger.trip(true)));
        assert!(panicked.is_err());
        // The state was half changed (the push happened), and nothing was recorded.
        assert_eq!((ledger.size(), ledger.version()), (11, 1));
        let poisoned = ledger.record(LedgerEvent::Entered { amount: 1 });
        assert!(
            matches!(poisoned, Err(DomainError::Poisoned { entity: "Ledger", id }) if id == ledger.id()),
            "{poisoned:?}"
        );
        let app = Application::in_memory().expect("in-memory application");
        let error = app
            .save(&mut ledger)
            .expect_err("a poisoned aggregate is not saved");
        assert!(error.to_string().contains("poisoned"), "{error}");
        assert_eq!(ledger.pending_events().len(), 1);
    }
}

/// A lamp whose events depend on the build's `cfg`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lamp {
    on: bool,
    level: u8,
}

#[entity]
impl Lamp {
    #[event(Installed)]
    fn install() -> Self {
        Lamp {
            on: false,
            level: 0,
        }
    }

    #[cfg(not(test))]
    #[event(Switched)]
    pub fn switch(&mut self, on: bool) {
        self.on = on;
    }

    #[cfg(test)]
    #[event(Dimmed)]
    pub fn dim(&mut self, level: u8) {
        self.level = level;
    }

    #[event(Removed)]
    pub fn remove(&mut self) {
        self.on = false;
    }
}

#[test]
fn cfg_on_an_event_method_leaves_it_out_of_every_generated_piece() {
    assert_eq!(
        LampEvent::topics(),
        ["Lamp.Installed", "Lamp.Dimmed", "Lamp.Removed"]
    );
    let mut lamp = Lamp::install();
    lamp.dim(3);
    lamp.remove();
    // Each event finds its own registration although one before it is compiled out.
    let topics: Vec<&str> = lamp
        .pending_events()
        .iter()
        .map(|e| e.event.topic())
        .collect();
    assert_eq!(topics, ["Lamp.Installed", "Lamp.Dimmed", "Lamp.Removed"]);
    assert_eq!(lamp.level, 3);
    assert!(matches!(
        LampEvent::decode("Lamp.Switched", b"{\"on\":true}"),
        Err(DomainError::UnknownTopic { .. })
    ));
}

/// A parcel, whose events use serde's field attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parcel {
    to: String,
    note: Option<String>,
    extra: Extra,
}

/// Fields flattened into an event's payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// A tracking code.
    code: u32,
}

#[entity]
impl Parcel {
    #[event(Sent)]
    fn send(
        #[serde(rename = "recipient")] to: String,
        #[serde(skip_serializing_if = "Option::is_none", default)] note: Option<String>,
    ) -> Self {
        Parcel {
            to,
            note,
            extra: Extra::default(),
        }
    }

    #[event(Tracked)]
    pub fn track(&mut self, #[serde(flatten)] extra: Extra) {
        self.extra = extra;
    }
}

#[test]
fn field_attributes_shape_the_payload() {
    let sent = ParcelEvent::Sent {
        to: "Ada".into(),
        note: None,
    };
    assert_eq!(sent.encode().expect("encode"), br#"{"recipient":"Ada"}"#);
    let back = ParcelEvent::decode("Parcel.Sent", br#"{"recipient":"Bo"}"#).expect("decode");
    assert!(matches!(back, ParcelEvent::Sent { to, note: None } if to == "Bo"));
    let value = serde_json::json!({ "recipient": "Cy", "note": "fragile" });
    let back = ParcelEvent::decode_value("Parcel.Sent", value).expect("decode");
    assert!(matches!(back, ParcelEvent::Sent { note: Some(n), .. } if n == "fragile"));
    // `flatten` goes through helper types: the fields sit in the payload itself.
    let tracked = ParcelEvent::Tracked {
        extra: Extra { code: 7 },
    };
    assert_eq!(tracked.encode().expect("encode"), br#"{"code":7}"#);
    let back = ParcelEvent::decode("Parcel.Tracked", br#"{"code":8}"#).expect("decode");
    assert!(matches!(back, ParcelEvent::Tracked { extra } if extra.code == 8));
    let mut parcel = Parcel::send("Di".into(), None);
    parcel.track(Extra { code: 9 });
    assert_eq!(parcel.extra.code, 9);
    assert_eq!(parcel.to, "Di");
    assert!(parcel.note.is_none());
}

#[test]
fn payloads_with_trailing_bytes_or_the_wrong_shape_are_refused() {
    assert!(matches!(
        DogEvent::decode("Dog.TrickAdded", br#"{"trick":"sit"} x"#),
        Err(DomainError::Payload { .. })
    ));
    assert!(matches!(
        DogEvent::decode("Dog.Forgotten", b"7"),
        Err(DomainError::Payload { .. })
    ));
    assert!(matches!(
        DogEvent::decode_value("Dog.Forgotten", serde_json::json!("x")),
        Err(DomainError::Payload { .. })
    ));
}

/// A reading whose type has no serde impls: `#[serde(with = ..)]` writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Celsius(i32);

mod as_text {
    use super::Celsius;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(c: &Celsius, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}C", c.0))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Celsius, D::Error> {
        let text = String::deserialize(d)?;
        text.trim_end_matches('C')
            .parse()
            .map(Celsius)
            .map_err(serde::de::Error::custom)
    }
}

/// A thermometer.
#[derive(Debug, Clone)]
pub struct Thermometer {
    last: Celsius,
}

#[entity(snapshots = false)]
impl Thermometer {
    #[event(Mounted)]
    fn mount() -> Self {
        Thermometer { last: Celsius(0) }
    }

    #[event(Read)]
    pub fn read(&mut self, #[serde(with = "as_text")] value: Celsius) {
        self.last = value;
    }
}

#[test]
fn a_field_written_with_serde_with_needs_no_serde_impls_of_its_own() {
    let event = ThermometerEvent::Read { value: Celsius(21) };
    assert_eq!(event.encode().expect("encode"), br#"{"value":"21C"}"#);
    let back = ThermometerEvent::decode("Thermometer.Read", br#"{"value":"-3C"}"#);
    assert!(matches!(back, Ok(ThermometerEvent::Read { value }) if value == Celsius(-3)));
    let mut t = Thermometer::mount();
    t.read(Celsius(5));
    assert_eq!(t.last, Celsius(5));
}

/// An entity declared inside a function body (as in doctests and test functions): the
/// generated items must see the function's items (a hidden module would not).
#[test]
fn an_entity_declared_in_a_function_body_works() {
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Memo {
        text: String,
    }

    #[entity]
    impl Memo {
        #[event(Written)]
        fn write(text: String) -> Self {
            Memo { text }
        }

        #[event(Edited)]
        fn edit(&mut self, text: String) {
            self.text = text;
        }
    }

    let mut memo = Memo::write("draft".into());
    memo.edit("final".into());
    assert_eq!((memo.text.as_str(), memo.version()), ("final", 2));
    assert_eq!(memo.pending_events()[1].topic(), "Memo.Edited");
}
