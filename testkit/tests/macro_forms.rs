//! Both forms of `certify_store!` expand and type-check for a user's crate. The constructor
//! says the store is unavailable, so the declared tests skip: what this file checks is the
//! expansion itself (the checks run for real on every backend in the project's tests).

use std::sync::Arc;

use eventsourcing::persistence::Storage;

mod with_a_global_log {
    use super::{Arc, Storage};

    #[allow(clippy::unnecessary_wraps)]
    fn fresh() -> Option<Arc<dyn Storage>> {
        None
    }

    eventsourcing_testkit::certify_store!(fresh);
}

mod without_a_global_log {
    use super::{Arc, Storage};

    #[allow(clippy::unnecessary_wraps)]
    fn fresh() -> Option<Arc<dyn Storage>> {
        None
    }

    eventsourcing_testkit::certify_store!(fresh, without_global_log);
}
