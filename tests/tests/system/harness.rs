//! The given/when/then harnesses of `eventsourcing::testing`, on the shop and dog school
//! models, including the failures they must report.

use eventsourcing::prelude::*;
use eventsourcing::testing::{given, given_no_history, History};
use eventsourcing_examples::dog_school::{Dog, DogCommands, DogError, DogEvent};
use eventsourcing_examples::shop::{
    place_order, Order, OrderCommands, OrderError, OrderEvent, PaymentEvent, Payments,
    RevenuePerDay,
};

fn registered() -> DogEvent {
    DogEvent::Registered {
        name: "Fido".into(),
    }
}

#[test]
fn entity_scenarios() {
    let dog = given::<Dog>([registered()])
        .when(|dog| dog.add_trick_once("sit".into()))
        .then_events([DogEvent::TrickAdded {
            trick: "sit".into(),
        }]);
    assert!(dog.knows("sit"));

    given::<Dog>([
        registered(),
        DogEvent::TrickAdded {
            trick: "sit".into(),
        },
    ])
    .when(|dog| dog.add_trick_once("sit".into()))
    .then_error(DogError::AlreadyKnown("sit".into()));

    given::<Order>([
        OrderEvent::Placed {
            customer: "a".into(),
            amount_cents: 1,
            day: "d".into(),
        },
        OrderEvent::Cancelled,
    ])
    .when(OrderCommands::cancel_once)
    .then_error_matches(|e| *e == OrderError::Cancelled);

    given_no_history::<Order>()
        .when_created(|| Order::place("a".into(), 5, "d".into()))
        .then_events([OrderEvent::Placed {
            customer: "a".into(),
            amount_cents: 5,
            day: "d".into(),
        }]);
}

#[test]
#[should_panic(expected = "events differ")]
fn other_events_fail_the_scenario() {
    given::<Dog>([registered()])
        .when(|dog| dog.add_trick("sit".into()))
        .then_events([DogEvent::TrickAdded {
            trick: "roll".into(),
        }]);
}

#[test]
#[should_panic(expected = "the command succeeded")]
fn an_expected_error_that_does_not_happen_fails_the_scenario() {
    given::<Dog>([registered()])
        .when(|dog| dog.add_trick_once("sit".into()))
        .then_error(DogError::AlreadyKnown("sit".into()));
}

#[test]
#[should_panic(expected = "the command failed")]
fn an_unexpected_error_fails_the_scenario() {
    given::<Dog>([
        registered(),
        DogEvent::TrickAdded {
            trick: "sit".into(),
        },
    ])
    .when(|dog| dog.add_trick_once("sit".into()))
    .then_no_events();
}

#[test]
fn projection_scenarios() -> Result<(), Box<dyn std::error::Error>> {
    let payment = Uuid::now_v7();
    let revenue = History::new()
        .event(
            payment,
            PaymentEvent::Charged {
                amount_cents: 700,
                day: "mon".into(),
            },
        )
        .event(
            Uuid::now_v7(),
            PaymentEvent::Charged {
                amount_cents: 300,
                day: "mon".into(),
            },
        )
        .event(payment, PaymentEvent::Refunded)
        .when_projected(RevenuePerDay::default());
    assert_eq!(revenue.by_day().get("mon"), Some(&300));
    Ok(())
}

#[test]
fn process_scenarios() -> Result<(), Box<dyn std::error::Error>> {
    let mut order = place_order("a", 250, "tue")?;
    let history = History::new().aggregate(&mut order);
    order.cancel_once()?;
    let processing = history
        .aggregate(&mut order)
        .when_processed_by(Payments)
        .then_events([
            PaymentEvent::Charged {
                amount_cents: 250,
                day: "tue".into(),
            },
            PaymentEvent::Refunded,
        ]);
    // Downstream state can be read through the process application.
    let payment: Aggregate<eventsourcing_examples::shop::Payment> =
        processing.process().application().get(order.id())?;
    assert!(payment.is_refunded());

    // Events the policy ignores: nothing downstream.
    History::new()
        .aggregate(&mut Dog::register("Rex".into()))
        .when_processed_by(Payments)
        .then_no_events();
    Ok(())
}

#[test]
#[should_panic(expected = "left 1 event(s) behind")]
fn a_when_that_records_before_failing_fails_the_scenario() {
    given::<Order>([OrderEvent::Placed {
        customer: "a".into(),
        amount_cents: 1,
        day: "d".into(),
    }])
    .when(|order| {
        order.cancel_once()?;
        order.cancel_once()
    })
    .then_error(OrderError::Cancelled);
}

#[test]
#[should_panic(expected = "events differ")]
fn other_downstream_events_fail_the_scenario() {
    History::new()
        .aggregate(&mut Order::place("a".into(), 1, "d".into()))
        .when_processed_by(Payments)
        .then_events([PaymentEvent::Refunded]);
}
