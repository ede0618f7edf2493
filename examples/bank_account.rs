//! Bank accounts: deposits, withdrawals with an overdraft limit, and a transfer saved
//! atomically across two accounts.
//!
//! ```text
//! cargo run --example bank_account
//! ```

use eventsourcing::prelude::*;
use eventsourcing::Conflict;
use eventsourcing_examples::bank::{transfer, Account, AccountCommands, AccountError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory, so that the example starts from a clean slate each run; any store URL works.
    let app = Application::open("memory:")?;

    let mut alice = Account::open("Alice".into(), 5_000);
    let mut bob = Account::open("Bob".into(), 0);
    alice.deposit(10_000)?;
    app.save((&mut alice, &mut bob))?;

    // A transfer changes two aggregates; one save writes both or neither.
    transfer(&mut alice, &mut bob, 12_000)?;
    app.save((&mut alice, &mut bob))?;
    println!(
        "after transfer: Alice {} Bob {}",
        alice.balance(),
        bob.balance()
    );

    // Alice is at -20.00 with a 50.00 overdraft: 40.00 more is refused, nothing recorded.
    match transfer(&mut alice, &mut bob, 4_000) {
        Err(AccountError::InsufficientFunds { balance, .. }) => {
            println!("refused: Alice's balance is {balance}");
        }
        other => println!("unexpected: {other:?}"),
    }
    assert!(alice.pending_events().is_empty() && bob.pending_events().is_empty());

    // A stale copy cannot overwrite newer history: the save is a typed conflict.
    let mut stale: Aggregate<Account> = app.repository().get_at(alice.id(), 1)?;
    stale.deposit(1)?;
    match app.save(&mut stale) {
        Err(ApplicationError::Conflict(Conflict {
            expected, actual, ..
        })) => {
            println!("stale save rejected: expected version {expected}, stream is at {actual}");
        }
        other => println!("unexpected: {other:?}"),
    }

    let alice: Aggregate<Account> = app.repository().get(alice.id())?;
    let bob: Aggregate<Account> = app.repository().get(bob.id())?;
    println!(
        "{}: {} (version {}), {}: {} (version {})",
        alice.owner(),
        alice.balance(),
        alice.version(),
        bob.owner(),
        bob.balance(),
        bob.version()
    );
    Ok(())
}
