//! The original Python README's example, the Rust way: an `Example` entity with explicit
//! `Created` and `Discarded` events, a hand-written mutator and factory, a repository, and an
//! application whose persistence subscriber stores published events.
//!
//! ```text
//! cargo run --example example
//! ```

use eventsourcing::prelude::*;
use eventsourcing_examples::seed::{discard, ExampleApplication};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = ExampleApplication::new(EventStore::in_memory());

    // Register a new example.
    let mut new_entity = app.register_new_example(10, 20)?;

    // Get the entity from the repo, using the new entity ID.
    let from_repo = app.example_repo.get(new_entity.id())?;
    assert_eq!(new_entity.state(), from_repo.state());
    println!(
        "registered {} with a={} b={}",
        from_repo.id(),
        from_repo.a,
        from_repo.b
    );

    // Discard it: the repository no longer returns it.
    discard(&mut new_entity)?;
    app.publish(&mut new_entity)?;
    match app.example_repo.get(new_entity.id()) {
        Err(ApplicationError::Discarded { id }) => println!("{id} was discarded"),
        other => println!("unexpected: {other:?}"),
    }
    println!("Congratulations! You have created a new event sourced application!");
    Ok(())
}
