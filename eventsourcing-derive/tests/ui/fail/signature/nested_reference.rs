// A reference nested in an event field's type: the same message as `&str` at the top level,
// at the reference.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Doc {
    tags: Vec<String>,
}

#[entity]
impl Doc {
    #[event(Created)]
    fn create_doc() -> Self {
        Doc { tags: Vec::new() }
    }

    #[event(Tagged)]
    fn tag(&mut self, tags: Vec<&str>) {
        self.tags.extend(tags.into_iter().map(str::to_owned));
    }

    #[event(Retagged)]
    fn retag(&mut self, first: Option<&String>, pairs: Vec<(u8, &'static str)>) {
        self.tags = first.into_iter().cloned().collect();
        let _ = pairs;
    }
}

fn main() {}
