// `#[entity]` on an impl for a type that is not a named struct.
use eventsourcing::prelude::*;

#[entity]
impl (u8, u8) {
    fn nothing() {}
}

fn main() {}
