//! `Saveable`: what `Application::save` accepts — one aggregate (owned or borrowed), tuples,
//! vectors, arrays and slices of them, all written in one atomic append.

use uuid::Uuid;

use super::error::ApplicationError;
use super::event_store::EventStore;
use super::snapshots::encode_snapshot;
use crate::domain::{Aggregate, Entity};
use crate::persistence::{Mapper, StoredSnapshot, StreamAppend};

/// One or more aggregates that [`Application::save`](super::Application::save) writes in one atomic append.
///
/// Implemented for `Aggregate<T>`, `&mut` of any saveable (so `&mut Aggregate<T>`), tuples of
/// up to eight saveables, `Vec`s, arrays and slices of them. Owned forms are what the async
/// facade moves onto its blocking pool and hands back.
pub trait Saveable {
    /// Encodes the pending events as appends expecting each aggregate's saved version.
    ///
    /// # Errors
    /// Encoding errors.
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError>;

    /// Clears the pending events after a successful append.
    fn mark_saved(&mut self);

    /// Encodes the snapshots this save makes due under the store's
    /// [`SnapshotPolicy`](super::SnapshotPolicy), to be written once the events have committed. The default takes
    /// none.
    ///
    /// # Errors
    /// Encoding errors.
    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        let _ = (store, out);
        Ok(())
    }

    /// Appends the event id of every pending event, in save order: what a caller looks up to
    /// learn whether a save it stopped waiting for committed. The default adds none.
    fn collect_event_ids(&self, out: &mut Vec<Uuid>) {
        let _ = out;
    }
}

impl<S: Saveable + ?Sized> Saveable for &mut S {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        (**self).collect_appends(mapper, out)
    }

    fn mark_saved(&mut self) {
        (**self).mark_saved();
    }

    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        (**self).collect_snapshots(store, out)
    }

    fn collect_event_ids(&self, out: &mut Vec<Uuid>) {
        (**self).collect_event_ids(out);
    }
}

impl<T: Entity> Saveable for Aggregate<T> {
    fn collect_appends(
        &self,
        mapper: &Mapper,
        out: &mut Vec<StreamAppend>,
    ) -> Result<(), ApplicationError> {
        self.check_not_poisoned()?;
        let pending = self.pending_events();
        if pending.is_empty() {
            return Ok(());
        }
        let stream_id = self.id().to_string();
        let events = pending
            .iter()
            .map(|e| mapper.to_stored_in(&stream_id, e))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(StreamAppend {
            stream_id,
            expected_version: self.saved_version(),
            events,
        });
        Ok(())
    }

    fn mark_saved(&mut self) {
        drop(self.collect_events());
    }

    fn collect_snapshots(
        &self,
        store: &EventStore,
        out: &mut Vec<(Uuid, StoredSnapshot)>,
    ) -> Result<(), ApplicationError> {
        if self.pending_events().is_empty()
            || !store
                .snapshot_policy()
                .is_due::<T>(self.saved_version(), self.version())
        {
            return Ok(());
        }
        if let Some(codec) = T::snapshot_codec() {
            out.push((self.id(), encode_snapshot(self, &codec, store.mapper())?));
        }
        Ok(())
    }

    fn collect_event_ids(&self, out: &mut Vec<Uuid>) {
        out.extend(self.pending_events().iter().map(|e| e.metadata.event_id));
    }
}

/// Collections of saveables: every element, in order. (One body for `Vec`, arrays and
/// mutable slices: each derefs to a slice.)
macro_rules! saveable_collection {
    ($(impl [$($param:tt)*] for $ty:ty;)*) => {$(
        impl<$($param)*> Saveable for $ty {
            fn collect_appends(
                &self,
                mapper: &Mapper,
                out: &mut Vec<StreamAppend>,
            ) -> Result<(), ApplicationError> {
                self.iter().try_for_each(|s| s.collect_appends(mapper, out))
            }
            fn mark_saved(&mut self) {
                self.iter_mut().for_each(Saveable::mark_saved);
            }
            fn collect_snapshots(
                &self,
                store: &EventStore,
                out: &mut Vec<(Uuid, StoredSnapshot)>,
            ) -> Result<(), ApplicationError> {
                self.iter().try_for_each(|s| s.collect_snapshots(store, out))
            }
            fn collect_event_ids(&self, out: &mut Vec<Uuid>) {
                self.iter().for_each(|s| s.collect_event_ids(out));
            }
        }
    )*};
}

saveable_collection! {
    impl [S: Saveable] for Vec<S>;
    impl [S: Saveable, const N: usize] for [S; N];
    impl [S: Saveable] for [S];
}

macro_rules! saveable_tuple {
    ($($name:ident),+) => {
        impl<$($name: Saveable),+> Saveable for ($($name,)+) {
            #[allow(non_snake_case)]
            fn collect_appends(&self, mapper: &Mapper, out: &mut Vec<StreamAppend>) -> Result<(), ApplicationError> {
                let ($($name,)+) = self;
                $($name.collect_appends(mapper, out)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn mark_saved(&mut self) {
                let ($($name,)+) = self;
                $($name.mark_saved();)+
            }
            #[allow(non_snake_case)]
            fn collect_snapshots(&self, store: &EventStore, out: &mut Vec<(Uuid, StoredSnapshot)>) -> Result<(), ApplicationError> {
                let ($($name,)+) = self;
                $($name.collect_snapshots(store, out)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn collect_event_ids(&self, out: &mut Vec<Uuid>) {
                let ($($name,)+) = self;
                $($name.collect_event_ids(out);)+
            }
        }
    };
}

saveable_tuple!(A);
saveable_tuple!(A, B);
saveable_tuple!(A, B, C);
saveable_tuple!(A, B, C, D);
saveable_tuple!(A, B, C, D, E);
saveable_tuple!(A, B, C, D, E, F);
saveable_tuple!(A, B, C, D, E, F, G);
saveable_tuple!(A, B, C, D, E, F, G, H);
