//! The notification log: every event of an application in global (position) order.

use std::collections::VecDeque;

use super::error::ApplicationError;
use super::event_store::EventStore;
use crate::domain::{DomainEvent, EventEnvelope};
use crate::persistence::{NotificationQuery, StoredEvent};

/// Reads an application's events in position order, for followers, projections and
/// replication. Positions start at 1 and have no gaps that could later fill in.
#[derive(Debug, Clone, Copy)]
pub struct NotificationLog<'a> {
    store: &'a EventStore,
}

impl<'a> NotificationLog<'a> {
    /// The log of `store`.
    #[must_use]
    pub fn new(store: &'a EventStore) -> Self {
        Self { store }
    }

    /// Up to `limit` events from `from_position` (inclusive).
    ///
    /// # Errors
    /// Backend errors.
    pub fn select(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, ApplicationError> {
        self.query(&NotificationQuery::new(from_position, limit))
    }

    /// Events matching a query (position range, limit, topics).
    ///
    /// # Errors
    /// Backend errors.
    pub fn query(&self, query: &NotificationQuery) -> Result<Vec<StoredEvent>, ApplicationError> {
        Ok(self.store.recorder().select_notifications(query)?)
    }

    /// The highest position readers can see (0 when empty).
    ///
    /// # Errors
    /// Backend errors.
    pub fn max_position(&self) -> Result<u64, ApplicationError> {
        Ok(self.store.recorder().max_position()?)
    }

    /// Every event from `from_position`, read lazily in pages of `page_size`, so that scanning
    /// any number of events takes constant memory.
    #[must_use]
    pub fn iter(&self, from_position: u64, page_size: usize) -> NotificationIter<'a> {
        NotificationIter {
            store: self.store,
            next_position: from_position,
            page_size: page_size.max(1),
            page: VecDeque::new(),
            done: false,
        }
    }

    /// Decodes a notification into a typed domain event.
    ///
    /// # Errors
    /// Decoding errors naming the stream, version and position.
    pub fn decode<E: DomainEvent>(
        &self,
        stored: StoredEvent,
    ) -> Result<EventEnvelope<E>, ApplicationError> {
        self.store.decode(stored)
    }
}

/// Iterator over notifications, one page at a time. See [`NotificationLog::iter`].
#[derive(Debug)]
pub struct NotificationIter<'a> {
    store: &'a EventStore,
    next_position: u64,
    page_size: usize,
    page: VecDeque<StoredEvent>,
    done: bool,
}

impl Iterator for NotificationIter<'_> {
    type Item = Result<StoredEvent, ApplicationError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            let query = NotificationQuery::new(self.next_position, self.page_size);
            // The drained page's vector is reused for the next page (both conversions keep
            // the allocation), so that paging allocates nothing but the events themselves.
            let mut page = Vec::from(std::mem::take(&mut self.page));
            page.clear();
            match self
                .store
                .recorder()
                .select_notifications_into(&query, &mut page)
            {
                Ok(()) => {
                    self.done = page.len() < self.page_size;
                    if let Some(position) = page.last().and_then(|e| e.position) {
                        self.next_position = position + 1;
                    }
                    self.page = page.into();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}
