//! The recorder conformance kit: the checks every storage backend of
//! [`eventsourcing`] passes, public so that a store for another database can be certified the
//! same way the project's own backends are.
//!
//! Write a constructor that returns a fresh, empty store (or `None`, after a loud notice,
//! when the database is not reachable here), and call one macro in a test file:
//!
//! ```
//! use std::sync::Arc;
//! use eventsourcing::persistence::{MemoryRecorder, Storage};
//!
//! #[allow(clippy::unnecessary_wraps)]
//! fn fresh() -> Option<Arc<dyn Storage>> {
//!     Some(Arc::new(MemoryRecorder::new()))
//! }
//!
//! eventsourcing_testkit::certify_store!(fresh);
//! # fn main() {}
//! ```
//!
//! That declares, in three modules, one `#[test]` per check:
//! - `conformance`: the recorder contract ([`conformance`], [`recorder_conformance!`]): atomic
//!   and exact conflicts, ranges, the gap-free log under concurrent writers, tracking records,
//!   hostile and oversized input, exact round trips, snapshots, deletion, update in place;
//! - `evolution`: what applications build on the contract ([`evolution`],
//!   [`evolution_scenarios!`]): snapshots, time travel, upcasting of events and snapshots,
//!   aliases, migrations, compression and encryption;
//! - `model`: a model-based test ([`model`]): random sequences of operations checked against
//!   a reference model of the contract.
//!
//! A store without a gap-free global log (such as Cassandra) says so with
//! `certify_store!(fresh, without_global_log)`; it must then refuse the log, tracking records
//! and multi-stream appends with `PersistenceError::Unsupported`, writing nothing, and the
//! checks require exactly that.
//!
//! Each check is also a public function taking the store, for a backend that wants to run
//! one of them against a deliberately broken variant of itself and see it fail.

pub mod conformance;
mod counting;
pub mod domain_model;
pub mod evolution;
pub mod model;

pub use counting::CountingStorage;

/// Certifies a store: the conformance checks, the evolution scenarios and the model-based
/// test, each in a module of its own. `$fresh` is a function returning
/// `Option<Arc<dyn Storage>>`, a fresh and empty store each call (`None` skips).
#[macro_export]
macro_rules! certify_store {
    ($fresh:ident) => {
        $crate::certify_store!(@modules $fresh; ; );
    };
    ($fresh:ident, without_global_log) => {
        $crate::certify_store!(@modules $fresh; , without_global_log; without_global_log);
    };
    (@modules $fresh:ident; $(, $evolution:ident)?; $($kind:ident)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::$fresh;
            $crate::recorder_conformance!($fresh);
        }
        mod evolution {
            #[allow(unused_imports)]
            use super::$fresh;
            $crate::evolution_scenarios!($fresh $(, $evolution)?);
        }
        mod model {
            #[test]
            fn the_store_agrees_with_the_model() {
                // One store for every case: each case writes fresh stream ids and reads only
                // the streams it wrote.
                if let Some(store) = super::$fresh() {
                    let same = || ::std::sync::Arc::clone(&store);
                    if let Err(error) = $crate::model::run(&same, 48) {
                        panic!("the store departs from the model: {error}");
                    }
                }
            }
        }
    };
}
