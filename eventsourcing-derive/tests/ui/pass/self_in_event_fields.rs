//! `Self` in an event parameter's type means the entity, as in any method of its impl block:
//! in the event enum, the factory and the command it is the state type, not the enum or the
//! aggregate.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    value: u32,
    history: Vec<u32>,
}

#[entity]
impl Cell {
    #[event(Copied)]
    fn copy_of(original: Self) -> Self {
        original
    }

    #[event(Merged)]
    fn merge(&mut self, others: Vec<Self>, best: Option<Box<Self>>) {
        for other in others {
            self.value += other.value;
        }
        if let Some(best) = best {
            self.history.push(best.value);
        }
    }
}

fn main() {
    let seed = Cell { value: 1, history: Vec::new() };
    let mut cell = Cell::copy_of(seed.clone());
    cell.merge(vec![seed.clone(), seed], Some(Box::new(Cell { value: 9, history: vec![] })));
    assert_eq!((cell.value, cell.history.clone()), (3, vec![9]));
    let event: &CellEvent = &cell.pending_events()[1].event;
    assert!(matches!(event, CellEvent::Merged { others, .. } if others.len() == 2));
}
