//! The dog school: the quickstart of the README, on the default store (a SQLite file named
//! `eventsourcing.db` in the working directory, or `EVENTSOURCING_URL`).
//!
//! Run it twice: the second run finds the dogs registered by the first.
//!
//! ```text
//! cargo run --example dog_school
//! ```

use eventsourcing::prelude::*;
use eventsourcing_examples::dog_school::{Dog, DogCommands, DogError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::open_default()?;

    let log = app.notification_log();
    let before = log.max_position()?;
    println!("The store already holds {before} events.");

    let mut dog = Dog::register("Fido".into());
    dog.add_trick("roll over".into());
    dog.add_trick_once("play dead".into())?;
    app.save(&mut dog)?;

    // The school's rule: a dog cannot learn a trick twice. The command fails with a typed
    // error and leaves the aggregate as it was.
    let mut copy: Aggregate<Dog> = app.repository().get(dog.id())?;
    match copy.add_trick_once("roll over".into()) {
        Err(DogError::AlreadyKnown(trick)) => println!("Fido already knows `{trick}`."),
        other => println!("unexpected: {other:?}"),
    }
    assert!(copy.pending_events().is_empty());

    let copy: Aggregate<Dog> = app.repository().get(dog.id())?;
    println!(
        "{} (version {}) knows: {}",
        copy.name(),
        copy.version(),
        copy.tricks().join(", ")
    );

    let dogs = log
        .iter(1, 1_000)
        .filter(|e| e.as_ref().is_ok_and(|e| e.topic == "Dog.Registered"))
        .count();
    println!("Dogs registered in this store so far: {dogs}");
    println!("The store now holds {} events.", log.max_position()?);
    Ok(())
}
