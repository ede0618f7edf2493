//! Catch-up projections: added later, rebuilt, and a durable read model in SQLite whose
//! position commits in the same transaction as its rows (the worked example of
//! `docs/SYSTEM.md`).

use eventsourcing::persistence::BoxError;
use eventsourcing::prelude::*;
use eventsourcing::system::{DurableProjection, DurableProjector, SystemError};
use eventsourcing_examples::shop::{
    place_order, OrderCommands, OrderEvent, Payments, RevenuePerDay,
};
use eventsourcing_tests::support::TempDb;
use rusqlite::{params, Connection, OptionalExtension};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Orders, and payments processed from them, with a cancellation.
fn shop() -> Result<(Application, Application), Box<dyn std::error::Error>> {
    let orders = Application::in_memory().expect("in-memory application");
    let payments = Application::in_memory().expect("in-memory application");
    for (n, day) in (1u64..).zip(["2024-05-01", "2024-05-01", "2024-05-02", "2024-05-03"]) {
        let mut order = place_order("c", n * 1_000, day)?;
        orders.save(&mut order)?;
        if n == 2 {
            order.cancel_once()?;
            orders.save(&mut order)?;
        }
    }
    ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    )
    .run_until_caught_up()?;
    Ok((orders, payments))
}

#[test]
fn a_projection_added_later_equals_one_kept_incrementally_and_a_rebuild() -> TestResult {
    let orders = Application::in_memory().expect("in-memory application");
    let payments = Application::in_memory().expect("in-memory application");
    let mut process = ProcessApplication::new(
        payments.clone(),
        Upstream::application("orders", &orders),
        Payments,
    );
    let mut incremental = Projector::new(
        RevenuePerDay::default(),
        Upstream::application("payments", &payments),
    )
    .page_size(2);
    for n in 1..=7u64 {
        let mut order = place_order("c", n * 100, if n % 2 == 0 { "even" } else { "odd" })?;
        orders.save(&mut order)?;
        if n % 3 == 0 {
            order.cancel_once()?;
            orders.save(&mut order)?;
        }
        process.run_until_caught_up()?;
        incremental.run_until_caught_up()?;
    }
    let mut late = Projector::new(
        RevenuePerDay::default(),
        Upstream::application("payments", &payments),
    );
    assert_eq!(late.run_until_caught_up()?, 9);
    assert_eq!(late.projection(), incremental.projection());
    assert_eq!(late.position(), incremental.position());

    let before = incremental.projection().clone();
    assert_eq!(incremental.rebuild()?, 9);
    assert_eq!(incremental.projection(), &before);
    assert_eq!(before.by_day().get("odd"), Some(&(100 + 500 + 700)));
    assert_eq!(before.by_day().get("even"), Some(&(200 + 400)));
    Ok(())
}

#[test]
fn a_failing_projection_does_not_advance_past_the_event() -> TestResult {
    struct FailOnce(bool, u64);
    impl Projection for FailOnce {
        fn name(&self) -> &str {
            "fail-once"
        }
        fn apply(&mut self, event: &Notification<'_>) -> Result<(), BoxError> {
            if event.position() == 2 && !self.0 {
                self.0 = true;
                return Err("not now".into());
            }
            self.1 += 1;
            Ok(())
        }
        fn reset(&mut self) {
            self.1 = 0;
        }
    }
    let (orders, _) = shop()?;
    let mut projector =
        Projector::new(FailOnce(false, 0), Upstream::application("orders", &orders));
    let error = projector.run_until_caught_up().expect_err("fails at 2");
    assert!(
        matches!(error, SystemError::Projection { position: 2, .. }),
        "{error}"
    );
    assert_eq!(projector.position(), 1);
    assert_eq!(projector.run_until_caught_up()?, 4);
    assert_eq!(projector.projection().1, 5);
    Ok(())
}

/// A durable read model: orders per customer in a SQLite table, with the position in a
/// second table updated in the same transaction.
struct OrdersPerDay {
    db: Connection,
}

impl OrdersPerDay {
    fn open(path: &std::path::Path) -> Result<Self, rusqlite::Error> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS orders_per_day (day TEXT PRIMARY KEY, orders INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS projection_position (name TEXT PRIMARY KEY, position INTEGER NOT NULL);",
        )?;
        Ok(Self { db })
    }

    fn count(&self, day: &str) -> Result<i64, rusqlite::Error> {
        self.db
            .query_row(
                "SELECT orders FROM orders_per_day WHERE day = ?1",
                [day],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
    }
}

impl DurableProjection for OrdersPerDay {
    fn name(&self) -> &str {
        "orders-per-day"
    }

    fn topics(&self) -> Vec<String> {
        vec!["Order.Placed".into()]
    }

    fn position(&self) -> Result<u64, BoxError> {
        let position: Option<i64> = self
            .db
            .query_row(
                "SELECT position FROM projection_position WHERE name = ?1",
                [self.name()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(u64::try_from(position.unwrap_or_default())?)
    }

    fn apply_batch(&mut self, events: &[Notification<'_>], position: u64) -> Result<(), BoxError> {
        let tx = self.db.transaction()?;
        for event in events {
            if let Some(OrderEvent::Placed { day, .. }) =
                event.decode::<OrderEvent>()?.map(|e| e.event)
            {
                tx.execute(
                    "INSERT INTO orders_per_day (day, orders) VALUES (?1, 1)
                     ON CONFLICT (day) DO UPDATE SET orders = orders + 1",
                    [day],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO projection_position (name, position) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET position = ?2",
            params!["orders-per-day", i64::try_from(position)?],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn reset(&mut self) -> Result<(), BoxError> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM orders_per_day", [])?;
        tx.execute(
            "DELETE FROM projection_position WHERE name = ?1",
            ["orders-per-day"],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[test]
fn a_durable_projection_resumes_after_a_restart_and_rebuilds() -> TestResult {
    let (orders, _) = shop()?;
    let db = TempDb::new("system-projection");
    {
        let mut projector = DurableProjector::new(
            OrdersPerDay::open(db.path())?,
            Upstream::application("orders", &orders),
        )
        .page_size(2);
        assert_eq!(projector.pull()?, 2);
        assert_eq!(projector.position()?, 2);
    }
    let mut more = place_order("c", 1, "2024-05-03")?;
    orders.save(&mut more)?;
    let mut projector = DurableProjector::new(
        OrdersPerDay::open(db.path())?,
        Upstream::application("orders", &orders),
    );
    assert_eq!(projector.position()?, 2);
    assert_eq!(projector.run_until_caught_up()?, 3);
    assert_eq!(projector.position()?, 6);
    let counts = |p: &DurableProjector<OrdersPerDay>| -> Result<Vec<i64>, rusqlite::Error> {
        ["2024-05-01", "2024-05-02", "2024-05-03"]
            .iter()
            .map(|d| p.projection().count(d))
            .collect()
    };
    assert_eq!(counts(&projector)?, vec![2, 1, 2]);
    assert_eq!(projector.rebuild()?, 5);
    assert_eq!(counts(&projector)?, vec![2, 1, 2]);
    assert_eq!(projector.position()?, 6);
    Ok(())
}

#[test]
fn a_failed_batch_commits_neither_rows_nor_position() -> TestResult {
    struct Broken(OrdersPerDay);
    impl DurableProjection for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn position(&self) -> Result<u64, BoxError> {
            self.0.position()
        }
        fn apply_batch(
            &mut self,
            events: &[Notification<'_>],
            position: u64,
        ) -> Result<(), BoxError> {
            let tx = self.0.db.transaction()?;
            tx.execute(
                "INSERT INTO orders_per_day (day, orders) VALUES ('x', 1)",
                [],
            )?;
            drop(tx); // rolled back
            let _ = (events, position);
            Err("disk on fire".into())
        }
        fn reset(&mut self) -> Result<(), BoxError> {
            self.0.reset()
        }
    }
    let (orders, _) = shop()?;
    let db = TempDb::new("system-projection-broken");
    let mut projector = DurableProjector::new(
        Broken(OrdersPerDay::open(db.path())?),
        Upstream::application("orders", &orders),
    );
    assert!(matches!(
        projector.pull(),
        Err(SystemError::Projection { position: 1, .. })
    ));
    assert_eq!(projector.position()?, 0);
    assert_eq!(projector.projection().0.count("x")?, 0);
    Ok(())
}
