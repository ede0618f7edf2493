//! Behaviour of `Application`: save and load, conflicts, atomic multi-aggregate saves, replay,
//! time travel, the notification log and the bus.

use eventsourcing::Conflict;
use std::sync::{Arc, Mutex};

use eventsourcing::prelude::*;
use eventsourcing::{EventQuery, StoredEvent};
use eventsourcing_examples::bank::{
    transfer, Account, AccountCommands, AccountError, AccountEvent,
};
use eventsourcing_examples::dog_school::{Dog, DogCommands, DogError, DogEvent};

fn app() -> Application {
    Application::open("memory:").expect("memory application")
}

#[test]
fn save_and_get_round_trip() {
    let app = app();
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("roll over".into());
    assert_eq!(dog.version(), 2);
    assert_eq!(dog.pending_events().len(), 2);
    let saved = app.save(&mut dog).expect("save");
    assert_eq!(saved.positions.len(), 2);
    assert!(
        dog.pending_events().is_empty(),
        "save clears pending events"
    );
    let copy: Aggregate<Dog> = app.repository().get(dog.id()).expect("get");
    assert_eq!(copy.state(), dog.state());
    assert_eq!(copy.version(), 2);
    assert_eq!(copy.created_on(), dog.created_on());
    assert_eq!(copy.modified_on(), dog.modified_on());
    assert!(copy.knows("roll over"));
}

#[test]
fn missing_aggregate_is_a_typed_not_found() {
    let app = app();
    let id = Uuid::now_v7();
    let error = app.get::<Dog>(id).expect_err("missing");
    assert!(matches!(error, ApplicationError::NotFound { id: missing } if missing == id));
    assert!(!app.repository::<Dog>().contains(id).expect("contains"));
}

#[test]
fn command_rule_failure_leaves_aggregate_unchanged() {
    let mut dog = Dog::register("Rex".into());
    dog.add_trick_once("sit".into()).expect("first time");
    let before = (
        dog.state().clone(),
        dog.version(),
        dog.pending_events().len(),
    );
    let error = dog.add_trick_once("sit".into()).expect_err("second time");
    assert_eq!(error, DogError::AlreadyKnown("sit".into()));
    assert_eq!(
        (
            dog.state().clone(),
            dog.version(),
            dog.pending_events().len()
        ),
        before
    );
}

#[test]
fn stale_writer_gets_conflict_and_writes_nothing() {
    let app = app();
    let mut dog = Dog::register("Fido".into());
    app.save(&mut dog).expect("save");
    let mut first: Aggregate<Dog> = app.get(dog.id()).expect("get");
    let mut second: Aggregate<Dog> = app.get(dog.id()).expect("get");
    first.add_trick("sit".into());
    second.add_trick("beg".into());
    app.save(&mut first).expect("first wins");
    let before = app.notification_log().max_position().expect("max");
    let error = app.save(&mut second).expect_err("second conflicts");
    match error {
        ApplicationError::Conflict(Conflict {
            stream_id,
            expected,
            actual,
        }) => {
            assert_eq!(stream_id, dog.id().to_string());
            assert_eq!((expected, actual), (1, 2));
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    assert_eq!(app.notification_log().max_position().expect("max"), before);
    assert_eq!(
        second.pending_events().len(),
        1,
        "a failed save keeps pending events"
    );
    let stored: Aggregate<Dog> = app.get(dog.id()).expect("get");
    assert_eq!(stored.tricks(), ["sit".to_owned()]);
}

#[test]
fn transfer_saves_two_aggregates_atomically() {
    let app = app();
    let mut alice = Account::open("Alice".into(), 0);
    let mut bob = Account::open("Bob".into(), 0);
    alice.deposit(100).expect("deposit");
    app.save((&mut alice, &mut bob)).expect("open both");

    // A concurrent change to Bob makes the transfer's save conflict: neither account changes.
    let mut bob_elsewhere: Aggregate<Account> = app.get(bob.id()).expect("get");
    bob_elsewhere.deposit(5).expect("deposit");
    app.save(&mut bob_elsewhere).expect("save elsewhere");

    transfer(&mut alice, &mut bob, 60).expect("transfer");
    let error = app.save((&mut alice, &mut bob)).expect_err("bob moved on");
    assert!(error.is_conflict());
    assert_eq!(
        app.get::<Account>(alice.id()).expect("alice").balance(),
        100,
        "alice untouched"
    );
    assert_eq!(app.get::<Account>(bob.id()).expect("bob").balance(), 5);

    // Reload and retry: both change together.
    let mut alice: Aggregate<Account> = app.get(alice.id()).expect("alice");
    let mut bob: Aggregate<Account> = app.get(bob.id()).expect("bob");
    transfer(&mut alice, &mut bob, 60).expect("transfer");
    let saved = app.save(vec![&mut alice, &mut bob]).expect("save");
    assert_eq!(saved.positions.len(), 2);
    assert_eq!(app.get::<Account>(alice.id()).expect("alice").balance(), 40);
    assert_eq!(app.get::<Account>(bob.id()).expect("bob").balance(), 65);
}

#[test]
fn overdraft_limit_is_enforced_without_recording() {
    let mut account = Account::open("Carol".into(), 30);
    account.withdraw(30).expect("down to the limit");
    let error = account.withdraw(1).expect_err("beyond the limit");
    assert!(matches!(
        error,
        AccountError::InsufficientFunds { balance: -30, .. }
    ));
    assert_eq!(account.pending_events().len(), 2);
    assert_eq!(account.deposit(0), Err(AccountError::NotPositive(0)));
    account.close().expect("close");
    assert_eq!(account.deposit(5), Err(AccountError::Closed));
}

#[test]
fn replay_equals_live_state() {
    let app = app();
    let mut account = Account::open("Dave".into(), 100);
    for i in 1..=50 {
        if i % 3 == 0 {
            account.withdraw(i).expect("withdraw");
        } else {
            account.deposit(i * 2).expect("deposit");
        }
        if i % 10 == 0 {
            app.save(&mut account).expect("save");
        }
    }
    let replayed: Aggregate<Account> = app.get(account.id()).expect("get");
    assert_eq!(replayed.state(), account.state());
    assert_eq!(replayed.version(), account.version());
    assert_eq!(replayed.modified_on(), account.modified_on());

    // The event player on the raw events gives the same.
    let events = app
        .event_store()
        .events::<AccountEvent>(account.id())
        .expect("events");
    let played = Aggregate::<Account>::replay(events)
        .expect("replay")
        .expect("some");
    assert_eq!(played.state(), account.state());
}

#[test]
fn time_travel_and_events_from_a_version() {
    let app = app();
    let mut dog = Dog::register("Fido".into());
    for trick in ["sit", "beg", "roll over"] {
        dog.add_trick(trick.into());
    }
    app.save(&mut dog).expect("save");
    let at_two: Aggregate<Dog> = app.repository().get_at(dog.id(), 2).expect("v2");
    assert_eq!(at_two.tricks(), ["sit".to_owned()]);
    assert_eq!(at_two.version(), 2);
    let later = app
        .event_store()
        .select::<DogEvent>(dog.id(), &EventQuery::all().from_version(3))
        .expect("from 3");
    assert_eq!(
        later.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(matches!(&later[0].event, DogEvent::TrickAdded { trick } if trick == "beg"));
}

#[test]
fn notification_log_is_in_save_order() {
    let app = app();
    let mut expected = Vec::new();
    for name in ["a", "b", "c"] {
        let mut dog = Dog::register(name.into());
        dog.add_trick("sit".into());
        app.save(&mut dog).expect("save");
        expected.push((dog.id().to_string(), 1));
        expected.push((dog.id().to_string(), 2));
    }
    let log = app.notification_log();
    let all = log.select(1, 100).expect("select");
    let seen: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e.stream_id.clone(), e.version))
        .collect();
    assert_eq!(seen, expected);
    let positions: Vec<u64> = all.iter().filter_map(|e| e.position).collect();
    assert_eq!(positions, (1..=6).collect::<Vec<_>>());
    let page = log.select(3, 2).expect("page");
    assert_eq!(
        page.iter().filter_map(|e| e.position).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let streamed: Vec<u64> = log
        .iter(2, 2)
        .map(|e| e.expect("event").position.expect("position"))
        .collect();
    assert_eq!(streamed, (2..=6).collect::<Vec<_>>());
    let decoded = log.decode::<DogEvent>(all[0].clone()).expect("decode");
    assert!(matches!(decoded.event, DogEvent::Registered { ref name } if name == "a"));
}

#[test]
fn bus_publishes_after_commit_in_order() {
    let app = app();
    type Seen = Vec<(String, Option<u64>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = Arc::clone(&seen);
    app.bus().subscribe(move |events: &[StoredEvent]| {
        let mut seen = sink.lock().map_err(|e| e.to_string())?;
        seen.extend(events.iter().map(|e| (e.topic.clone(), e.position)));
        Ok(())
    });
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    dog.add_trick("beg".into());
    app.save(&mut dog).expect("save");

    // A conflicting save publishes nothing.
    let mut stale: Aggregate<Dog> = app.repository().get_at(dog.id(), 1).expect("v1");
    stale.add_trick("late".into());
    app.save(&mut stale).expect_err("conflict");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            ("Dog.Registered".to_owned(), Some(1)),
            ("Dog.TrickAdded".to_owned(), Some(2)),
            ("Dog.TrickAdded".to_owned(), Some(3)),
        ]
    );
}

#[test]
fn typed_bus_subscription_decodes_its_own_events() {
    let app = app();
    let tricks: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&tricks);
    app.bus()
        .subscribe_to::<DogEvent, _>(app.event_store().mapper().clone(), move |envelope| {
            if let DogEvent::TrickAdded { trick } = envelope.event {
                sink.lock().map_err(|e| e.to_string())?.push(trick);
            }
            Ok(())
        });
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    let mut account = Account::open("Eve".into(), 0);
    app.save((&mut dog, &mut account)).expect("save");
    assert_eq!(*tricks.lock().expect("lock"), vec!["sit".to_owned()]);
}

#[test]
fn failing_subscriber_is_reported_after_commit() {
    let app = app();
    app.bus()
        .subscribe(|_: &[StoredEvent]| Err("projection down".into()));
    let mut dog = Dog::register("Fido".into());
    let error = app.save(&mut dog).expect_err("subscriber failed");
    assert!(
        matches!(
            error,
            ApplicationError::Publish {
                last_position: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        app.get::<Dog>(dog.id()).is_ok(),
        "the events were committed"
    );
}

#[test]
fn arrays_and_slices_of_aggregates_save_atomically() {
    let app = app();
    let mut a = Dog::register("A".into());
    let mut b = Dog::register("B".into());
    assert_eq!(
        app.save([&mut a, &mut b]).expect("array").positions.len(),
        2
    );
    a.add_trick("sit".into());
    b.add_trick("beg".into());
    let mut both = [&mut a, &mut b];
    assert_eq!(app.save(&mut both[..]).expect("slice").positions.len(), 2);
    assert!(a.pending_events().is_empty() && b.pending_events().is_empty());
    assert_eq!(
        app.get::<Dog>(b.id()).expect("b").tricks(),
        ["beg".to_owned()]
    );
}
