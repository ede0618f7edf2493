// A `&self` method named like a method of `Aggregate` would be shadowed on the aggregate:
// `page.version()` would return the aggregate's version, not this one.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    revision: u64,
}

#[entity]
impl Page {
    #[event(Created)]
    fn create_page() -> Self {
        Page { revision: 7 }
    }

    pub fn version(&self) -> u64 {
        self.revision
    }

    pub fn id(&self) -> u64 {
        self.revision
    }

    pub fn pending_events(&self) -> usize {
        0
    }
}

fn main() {
    let page = Page::create_page();
    assert_eq!(page.version(), 7);
}
