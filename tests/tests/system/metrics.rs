//! Metrics (feature `metrics`): saves, events, conflicts, load durations, snapshot hits and
//! follower lag, seen by a recorder installed for the test's thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use eventsourcing::persistence::BoxError;
use eventsourcing::prelude::*;
use eventsourcing::system::{Notification, Projection, Projector, Upstream};
use eventsourcing_examples::bank::{Account, AccountCommands};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

type Values = Arc<Mutex<BTreeMap<String, Vec<f64>>>>;

/// Every metric as `name{label=value,..}`, with every value recorded (a counter's running
/// total, a gauge's settings, a histogram's samples).
#[derive(Default)]
struct Recording(Values);

struct Handle {
    key: String,
    values: Values,
}

impl Handle {
    fn push(&self, update: impl FnOnce(Option<f64>) -> f64) {
        let mut values = self.values.lock().expect("lock");
        let series = values.entry(self.key.clone()).or_default();
        let next = update(series.last().copied());
        series.push(next);
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        #[allow(clippy::cast_precision_loss)]
        self.push(|last| last.unwrap_or(0.0) + value as f64);
    }
    fn absolute(&self, value: u64) {
        #[allow(clippy::cast_precision_loss)]
        self.push(|_| value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.push(|last| last.unwrap_or(0.0) + value);
    }
    fn decrement(&self, value: f64) {
        self.push(|last| last.unwrap_or(0.0) - value);
    }
    fn set(&self, value: f64) {
        self.push(|_| value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(|_| value);
    }
}

impl Recording {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let key = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        Arc::new(Handle {
            key,
            values: Arc::clone(&self.0),
        })
    }

    fn last(&self, key: &str) -> Option<f64> {
        self.0.lock().expect("lock").get(key)?.last().copied()
    }

    fn samples(&self, key: &str) -> usize {
        self.0.lock().expect("lock").get(key).map_or(0, Vec::len)
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

struct Count;

impl Projection for Count {
    fn name(&self) -> &str {
        "count"
    }
    fn apply(&mut self, _: &Notification<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    fn reset(&mut self) {}
}

#[test]
fn saves_events_conflicts_loads_snapshot_hits_and_follower_lag() {
    let recording = Recording::default();
    metrics::with_local_recorder(&recording, || {
        let app = Application::in_memory().expect("in-memory application");
        let mut alice = Account::open("Alice".into(), 0);
        alice.deposit(100).expect("deposit");
        let mut bob = Account::open("Bob".into(), 0);
        app.save((&mut alice, &mut bob)).expect("save");
        assert_eq!(recording.last("eventsourcing_saves_total"), Some(1.0));
        assert_eq!(
            recording.last("eventsourcing_events_saved_total"),
            Some(3.0)
        );

        let mut stale: Aggregate<Account> = app.get(alice.id()).expect("get");
        alice.deposit(1).expect("deposit");
        app.save(&mut alice).expect("save");
        stale.deposit(2).expect("deposit");
        assert!(app.save(&mut stale).is_err());
        assert_eq!(recording.last("eventsourcing_conflicts_total"), Some(1.0));
        assert_eq!(recording.last("eventsourcing_saves_total"), Some(2.0));

        assert_eq!(
            recording.samples("eventsourcing_load_duration_seconds{entity=Account}"),
            1
        );
        assert_eq!(
            recording.last("eventsourcing_snapshot_hits_total{entity=Account}"),
            None
        );
        app.take_snapshot::<Account>(alice.id(), None)
            .expect("snapshot");
        let _: Aggregate<Account> = app.get(alice.id()).expect("get");
        assert_eq!(
            recording.last("eventsourcing_snapshot_hits_total{entity=Account}"),
            Some(1.0)
        );

        let mut projector = Projector::new(Count, Upstream::application("bank", &app)).page_size(2);
        projector.pull().expect("pull");
        assert_eq!(
            recording.last("eventsourcing_follower_lag{follower=count}"),
            Some(2.0)
        );
        projector.run_until_caught_up().expect("catch up");
        assert_eq!(
            recording.last("eventsourcing_follower_lag{follower=count}"),
            Some(0.0)
        );
    });
}
