//! A shop: orders, a payments process application that charges every order exactly once,
//! and a revenue-per-day projection, kept up to date by a background runner that the orders
//! application's bus wakes after each save.
//!
//! ```text
//! cargo run --example shop
//! ```

use std::time::Duration;

use eventsourcing::prelude::*;
use eventsourcing_examples::shop::{place_order, OrderCommands, Payment, Payments, RevenuePerDay};

const ORDERS_DB: &str = "shop.db";
const PAYMENTS_DB: &str = "shop-payments.db";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Start from a clean slate each run.
    for db in [ORDERS_DB, PAYMENTS_DB] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
    }
    let orders = Application::open(&format!("sqlite://{ORDERS_DB}"))?;
    let payments = Application::open(&format!("sqlite://{PAYMENTS_DB}"))?;

    // The payments process application follows the orders log; its tracking records live in
    // the payments store, committed with the payments they cause.
    let process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    )
    .named("payments");
    // The revenue projection follows the payments log, in memory, rebuilt at each start.
    let revenue = Projector::new(
        RevenuePerDay::default(),
        Upstream::application("payments", &payments),
    );

    let mut runner = Runner::new()
        .with(process)
        .with(revenue)
        .spawn(Duration::from_secs(1))?;
    runner.follow_bus(orders.bus());

    let mut first = place_order("alice", 2_500, "2024-05-01")?;
    let mut second = place_order("bob", 1_000, "2024-05-01")?;
    let mut third = place_order("carol", 4_200, "2024-05-02")?;
    orders.save((&mut first, &mut second, &mut third))?;
    second.cancel_once()?;
    orders.save(&mut second)?;

    if !runner.wait_until_caught_up(Duration::from_secs(10)) {
        return Err("the runner did not catch up in time".into());
    }
    if let Some(error) = runner.take_error() {
        return Err(error.into());
    }
    let runner = runner.stop()?;
    println!("followers: {runner:?}");

    let payment: Aggregate<Payment> = payments.get(first.id())?;
    println!(
        "payment for alice's order: {} cents",
        payment.amount_cents()
    );
    let charged = &payments.notification_log().select(1, 1)?[0];
    println!(
        "caused by order event {:?}, correlation {:?}",
        charged.metadata.causation_id, charged.metadata.correlation_id
    );

    // Exactly once: a fresh process application over the same stores finds nothing to do.
    let mut again = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    );
    println!(
        "a restarted process application processed {} more orders events",
        again.run_until_caught_up()?
    );

    // A projection added later catches up from position 1.
    let mut late = Projector::new(
        RevenuePerDay::default(),
        Upstream::application("payments", &payments),
    );
    late.run_until_caught_up()?;
    for (day, cents) in late.projection().by_day() {
        println!("revenue on {day}: {}.{:02}", cents / 100, cents % 100);
    }
    Ok(())
}
