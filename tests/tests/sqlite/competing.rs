//! Two OS processes share one SQLite file's upstream as competing instances: both get
//! partitions, every upstream event is applied exactly once downstream in per-stream order,
//! and both stop cleanly on SIGTERM.

use std::time::{Duration, Instant};

use eventsourcing::prelude::*;
use eventsourcing_tests::competing::{assert_all_copied_once, copies, write_tickers, Instance};
use eventsourcing_tests::support::TempDb;

const EXE: &str = env!("CARGO_BIN_EXE_competing_instance");

#[test]
fn two_processes_share_one_file() -> Result<(), Box<dyn std::error::Error>> {
    let up_file = TempDb::new("competing-up");
    let down_file = TempDb::new("competing-down");
    let up = format!("sqlite://{}", up_file.path().display());
    let down = format!("sqlite://{}", down_file.path().display());
    let upstream = Application::open(&up)?;
    let downstream = Application::open(&down)?;
    let settings = [
        ("PARTITIONS", "4"),
        ("LEASE_TTL_MS", "1000"),
        ("WORK_MS", "2"),
    ];
    let mut written = write_tickers(&upstream, 20, 9);
    let mut a = Instance::start(EXE, "instance-a", &up, &down, &settings);
    let mut b = Instance::start(EXE, "instance-b", &up, &down, &settings);
    let deadline = Instant::now() + Duration::from_secs(20);
    while (a.held().is_empty() || b.held().is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !a.held().is_empty() && !b.held().is_empty(),
        "both hold partitions"
    );
    written.extend(write_tickers(&upstream, 20, 9));
    assert_all_copied_once(&written, &downstream, Duration::from_secs(60));
    let (_, by_instance) = copies(&downstream);
    assert_eq!(
        by_instance.len(),
        2,
        "both did some of the work: {by_instance:?}"
    );
    for instance in [&mut a, &mut b] {
        instance.signal("TERM");
        assert_eq!(instance.wait(Duration::from_secs(10)), Some(true));
    }
    Ok(())
}
