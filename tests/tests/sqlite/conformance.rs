//! The recorder conformance suite on the SQLite recorder: a fresh temporary database file per
//! check (WAL mode, FULL synchronous, a pool of read connections), and again on the private
//! in-memory database (one connection for everything).

mod file {
    use std::sync::Arc;

    use eventsourcing::persistence::{SqliteConfig, SqliteRecorder, Storage};
    use eventsourcing_tests::support::{Guarded, TempDb};

    #[allow(clippy::unnecessary_wraps)]
    fn fresh() -> Option<Arc<dyn Storage>> {
        let file = TempDb::new("sqlite-conformance");
        let recorder = SqliteRecorder::open(SqliteConfig::new(file.path())).expect("open file");
        Some(Guarded::store(Arc::new(recorder), file))
    }

    eventsourcing_testkit::recorder_conformance!(fresh);
}

mod in_memory {
    use std::sync::Arc;

    use eventsourcing::persistence::{SqliteRecorder, Storage};

    #[allow(clippy::unnecessary_wraps)]
    fn fresh() -> Option<Arc<dyn Storage>> {
        Some(Arc::new(
            SqliteRecorder::in_memory().expect("open in-memory"),
        ))
    }

    eventsourcing_testkit::recorder_conformance!(fresh);
}
